use foundations::span_fn;

#[span_fn("value", user = "yes")]
fn string_flag() {}

#[span_fn("value", user)]
fn flag_without_value() {}

#[span_fn("value", crate_path = "not a path")]
fn bad_crate_path() {}

#[span_fn("value", crate_path = foundations)]
fn unquoted_crate_path() {}

fn main() {
    string_flag();
    flag_without_value();
    bad_crate_path();
    unquoted_crate_path();
}
