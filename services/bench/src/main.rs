//! `carat-bench codec|read [DATA_DIR]`: see the crate docs (lib.rs) and docs/BENCHMARKS.md.

use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: carat-bench codec|read [DATA_DIR]");
    eprintln!(
        "       carat-bench cost FIGURES_DIR [--write DOC]   (the reference workload's bill)"
    );
    eprintln!(
        "  DATA_DIR defaults to ../shared/data/nab-aws-cloudwatch relative to the repository root"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some(cmd @ ("codec" | "read")) if args.len() <= 2 => {
            let dir = args
                .get(1)
                .map_or_else(carat_bench::data::default_dir, PathBuf::from);
            let run = if cmd == "codec" {
                carat_bench::codec::run
            } else {
                carat_bench::read::run
            };
            match run(&dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("carat-bench {cmd}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("cost") if (2..=4).contains(&args.len()) => {
            let dir = PathBuf::from(&args[1]);
            let write = match args.get(2).map(String::as_str) {
                None => None,
                Some("--write") if args.len() == 4 => Some(PathBuf::from(&args[3])),
                _ => return usage(),
            };
            match carat_bench::cost::run(&dir, write.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("carat-bench cost: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => usage(),
    }
}
