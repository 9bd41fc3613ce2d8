use foundations::span_fn;

#[span_fn("const")]
const fn answer() -> u32 {
    42
}

fn main() {
    let _ = answer();
}
