//! The generated struct: its fields are the fn's arguments, and it is the
//! `Task` under the fn's path unless `name = "..."` says otherwise.

use sitq::Task;

mod mail {
    #[sitq::task]
    pub async fn send(to: String, retries: u32) {
        let _ = (to, retries);
    }

    #[sitq::task(name = "mail.welcome")]
    pub async fn welcome(user_id: i64) {
        let _ = user_id;
    }

    #[sitq::task]
    pub async fn ping() {}
}

#[test]
fn fields_are_the_arguments() {
    let task = mail::send {
        to: "a@example.com".to_owned(),
        retries: 2,
    };
    assert_eq!(task.to, "a@example.com");
    assert_eq!(task.retries, 2);
    let _empty = mail::ping {};
}

#[test]
fn name_defaults_to_the_module_path_of_the_fn() {
    assert_eq!(<mail::send as Task>::NAME, "task_struct::mail::send");
    assert_eq!(<mail::ping as Task>::NAME, "task_struct::mail::ping");
}

#[test]
fn name_option_overrides_it() {
    assert_eq!(<mail::welcome as Task>::NAME, "mail.welcome");
}

#[test]
fn payload_round_trips_through_the_codec() -> sitq::Result<()> {
    let task = mail::send {
        to: "b@example.com".to_owned(),
        retries: 7,
    };
    let bytes = sitq_core::codec::encode(&task, "test payload")?;
    let back: mail::send = sitq_core::codec::decode(&bytes, "test payload")?;
    assert_eq!((back.to, back.retries), ("b@example.com".to_owned(), 7));
    Ok(())
}

#[test]
fn output_follows_the_return_type() {
    fn output_of<T: Task>() -> std::any::TypeId
    where
        T::Output: 'static,
    {
        std::any::TypeId::of::<T::Output>()
    }

    #[sitq::task]
    async fn plain() -> i64 {
        1
    }

    #[sitq::task]
    async fn fallible() -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }

    #[sitq::task]
    fn io_result() -> std::io::Result<String> {
        Ok(String::new())
    }

    assert_eq!(output_of::<plain>(), std::any::TypeId::of::<i64>());
    assert_eq!(output_of::<fallible>(), std::any::TypeId::of::<Vec<u8>>());
    assert_eq!(output_of::<io_result>(), std::any::TypeId::of::<String>());
    assert_eq!(output_of::<mail::ping>(), std::any::TypeId::of::<()>());
}
