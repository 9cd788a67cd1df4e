//! `servingctl version` prints the version and device; `servingctl top-k K LOGIT...` prints the indices of
//! the K best logits, one per line.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("version") => {
            println!("servingctl {} ({})", env!("CARGO_PKG_VERSION"), serving_core::device());
            ExitCode::SUCCESS
        }
        Some("top-k") if args.len() >= 3 => {
            let Ok(k) = args[1].parse::<usize>() else {
                eprintln!("servingctl: K must be a whole number, got {:?}", args[1]);
                return ExitCode::from(2);
            };
            let mut logits = Vec::new();
            for raw in &args[2..] {
                match raw.parse::<f32>() {
                    Ok(v) => logits.push(v),
                    Err(_) => {
                        eprintln!("servingctl: not a number: {raw:?}");
                        return ExitCode::from(2);
                    }
                }
            }
            for (index, _) in serving_core::top_k(&logits, k) {
                println!("{index}");
            }
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: servingctl version | servingctl top-k K LOGIT...");
            ExitCode::from(2)
        }
    }
}
