//! Each task registers itself; its `run` decodes the stored arguments, calls
//! the fn and encodes the result, as the worker will.

use std::fmt;

use sitq::Task;
use sitq_core::codec;
use sitq_core::{Registry, TaskRegistration};

#[sitq::task(queue = "math", priority = 4)]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[derive(Debug)]
struct Refused(&'static str);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

#[sitq::task]
async fn divide(a: i64, b: i64) -> Result<i64, Refused> {
    if b == 0 {
        Err(Refused("division by zero"))
    } else {
        Ok(a / b)
    }
}

/// A plain fn: run on the blocking pool, so on another thread than the
/// current-thread runtime of `#[tokio::test]`.
#[sitq::task(name = "blocking.thread")]
fn thread_of(tag: String) -> String {
    format!("{tag}:{:?}", std::thread::current().id())
}

#[sitq::task]
async fn nothing() {}

fn registration(name: &str) -> &'static TaskRegistration {
    let registry = match Registry::collect() {
        Ok(registry) => registry,
        Err(err) => panic!("collecting tasks: {err}"),
    };
    registry
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not registered; have {:?}", registry.names()))
}

/// A context as the worker would make for attempt 1 of task 1.
fn context(name: &str) -> sitq::Context {
    let claimed = sitq_core::ClaimedTask {
        id: sitq::TaskId(1),
        name: name.to_owned(),
        queue: "default".into(),
        payload: Vec::new(),
        attempt: 1,
        fence: 1,
        max_attempts: 1,
        created_at: chrono::Utc::now(),
        inputs: None,
        trace: None,
    };
    sitq::Context::for_attempt(&claimed).0
}

async fn run<T: Task>(task: &T) -> Result<Vec<u8>, String> {
    let payload = codec::encode(task, "test arguments").map_err(|err| err.to_string())?;
    let attempt = (registration(T::NAME).run)(&payload, None, context(T::NAME))
        .map_err(|err| err.to_string())?;
    attempt.await
}

#[test]
fn every_task_is_registered_with_its_place_and_defaults() {
    let add = registration(<add as Task>::NAME);
    assert_eq!(add.name, "registration::add");
    assert!(add.file.ends_with("registration.rs"), "{}", add.file);
    assert!(add.line > 0);
    assert_eq!(add.defaults, <add as Task>::DEFAULTS);
    assert_eq!(add.defaults.queue, "math");
    registration("registration::divide");
    registration("blocking.thread");
    registration("registration::nothing");
}

#[tokio::test]
async fn run_decodes_the_arguments_and_encodes_the_result() -> sitq::Result<()> {
    let bytes = run(&add { a: 2, b: 3 })
        .await
        .map_err(sitq::Error::Config)?;
    assert_eq!(codec::decode::<i64>(&bytes, "result")?, 5);
    let bytes = run(&nothing {}).await.map_err(sitq::Error::Config)?;
    codec::decode::<()>(&bytes, "result")?;
    Ok(())
}

#[tokio::test]
async fn ok_is_the_result_and_err_is_the_message() -> sitq::Result<()> {
    let bytes = run(&divide { a: 9, b: 3 })
        .await
        .map_err(sitq::Error::Config)?;
    assert_eq!(codec::decode::<i64>(&bytes, "result")?, 3);
    assert_eq!(
        run(&divide { a: 1, b: 0 }).await,
        Err("refused: division by zero".to_owned())
    );
    Ok(())
}

#[tokio::test]
async fn a_plain_fn_runs_on_the_blocking_pool() -> sitq::Result<()> {
    let task = thread_of {
        tag: "t".to_owned(),
    };
    let bytes = run(&task).await.map_err(sitq::Error::Config)?;
    let here = format!("t:{:?}", std::thread::current().id());
    let there = codec::decode::<String>(&bytes, "result")?;
    assert!(there.starts_with("t:"), "{there}");
    assert_ne!(there, here, "the plain fn ran on the runtime's thread");
    Ok(())
}

#[test]
fn a_corrupt_payload_is_an_error_naming_the_task() {
    let add = registration("registration::add");
    let err = match (add.run)(&[0xc1, 0xff, 0x00], None, context(add.name)) {
        Ok(_) => panic!("a corrupt payload decoded"),
        Err(err) => err,
    };
    assert!(matches!(err, sitq::Error::Decode { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("arguments of task registration::add"),
        "{err}"
    );
}

#[test]
fn a_payload_of_another_shape_is_an_error() -> sitq::Result<()> {
    let payload = codec::encode(&("not", "add"), "test arguments")?;
    let add = registration("registration::add");
    assert!((add.run)(&payload, None, context(add.name)).is_err());
    Ok(())
}
