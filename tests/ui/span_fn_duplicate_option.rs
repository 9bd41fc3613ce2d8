use foundations::span_fn;

#[span_fn("twice", user = true, user = false)]
fn user_twice() {}

#[span_fn("twice", crate_path = "foundations", crate_path = "foundations")]
fn crate_path_twice() {}

fn main() {
    user_twice();
    crate_path_twice();
}
