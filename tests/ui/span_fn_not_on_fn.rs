use foundations::span_fn;

#[span_fn("not_a_function")]
struct Config {
    retries: u32,
}

fn main() {
    let config = Config { retries: 3 };
    let _ = config.retries;
}
