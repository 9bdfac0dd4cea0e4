//! `citybooks-bench gen`: writes a generated ledger (see the library docs).

use std::path::PathBuf;

use anyhow::{Context, Result};
use citybooks_bench::{Dialect, Generator};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "citybooks-bench",
    about = "Generators for citybooks' benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum DialectArg {
    Api,
    Portal,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a deterministic ledger of N rows.
    ///
    /// Example: citybooks-bench gen --rows 1000000 --dialect api --out ledger-1m.csv
    Gen {
        #[arg(long)]
        rows: u64,
        #[arg(long, value_enum, default_value = "api")]
        dialect: DialectArg,
        #[arg(long, default_value_t = 2025)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Gen {
            rows,
            dialect,
            seed,
            out,
        } => {
            let dialect = match dialect {
                DialectArg::Api => Dialect::Api,
                DialectArg::Portal => Dialect::Portal,
            };
            let file = std::fs::File::create(&out)
                .with_context(|| format!("creating {}", out.display()))?;
            Generator::new().write(rows, dialect, seed, file)?;
            Ok(())
        }
    }
}
