//! `carat-bench codec [DATA_DIR]`: see the crate docs (lib.rs) and docs/BENCHMARKS.md.

use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: carat-bench codec [DATA_DIR]");
    eprintln!(
        "  DATA_DIR defaults to ../shared/data/nab-aws-cloudwatch relative to the repository root"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("codec") if args.len() <= 2 => {
            let dir = args
                .get(1)
                .map_or_else(carat_bench::data::default_dir, PathBuf::from);
            match carat_bench::codec::run(&dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("carat-bench codec: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => usage(),
    }
}
