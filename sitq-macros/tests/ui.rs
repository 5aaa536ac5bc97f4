//! Compile-time behaviour of `#[sitq::task]`: what it accepts, and the
//! diagnostics for what it rejects (`tests/ui/fail/*.stderr`, regenerated with
//! `TRYBUILD=overwrite cargo test -p sitq-macros --test ui`).

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
