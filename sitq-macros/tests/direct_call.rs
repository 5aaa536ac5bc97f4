//! The annotated fn stays an ordinary fn, callable directly.

#[sitq::task]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[sitq::task]
fn shout(text: String) -> Result<String, std::fmt::Error> {
    Ok(text.to_uppercase())
}

#[sitq::task]
async fn count(mut n: u32) -> u32 {
    n += 1;
    n
}

#[tokio::test]
async fn async_fn_is_still_callable() {
    assert_eq!(add(2, 3).await, 5);
    assert_eq!(count(1).await, 2);
}

#[test]
fn plain_fn_is_still_callable() {
    assert_eq!(shout("hi".to_owned()), Ok("HI".to_owned()));
}
