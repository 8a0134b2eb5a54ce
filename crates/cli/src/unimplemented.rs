//! Commands whose work lands with a later issue (the mail system itself and
//! its queue tools). They say so plainly and fail, rather than pretend.

/// Prints what is missing and returns the exit status.
pub fn main(name: &str, issue: &str) -> i32 {
    crate::msg::init(name);
    eprintln!(
        "{}: fatal: not yet implemented in Rostfix: {name} arrives with {issue}",
        crate::msg::program()
    );
    1
}
