//! Builds the web dashboard into the binary: installs its npm dependencies (ECharts,
//! pinned by web/package-lock.json) when they are missing, then embeds web/src/* and
//! ECharts' browser build. The dashboard therefore needs no internet at runtime, and
//! `cargo build` is the only build step.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let web = manifest.join("../../web");
    let src = web.join("src");
    let echarts = web.join("node_modules/echarts/dist/echarts.min.js");
    println!("cargo:rerun-if-changed={}", src.display());
    println!(
        "cargo:rerun-if-changed={}",
        web.join("package-lock.json").display()
    );
    println!("cargo:rerun-if-changed={}", echarts.display());

    if !echarts.exists() {
        let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
        let status = Command::new(npm)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&web)
            .status()
            .unwrap_or_else(|e| {
                panic!(
                    "the web dashboard needs npm to fetch its pinned dependencies ({e}); \
                     install Node.js and npm (Debian: apt-get install nodejs npm) and build again"
                )
            });
        assert!(
            status.success(),
            "`npm ci` in {} failed ({status}); see its output above",
            web.display()
        );
        assert!(
            echarts.exists(),
            "{} is missing after npm ci",
            echarts.display()
        );
    }

    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("{}: {e}", src.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                path,
            )
        })
        .collect();
    files.push(("echarts.min.js".to_string(), echarts));
    files.sort();

    let mut code = String::from(
        "/// The dashboard's files: (name, content).\npub static ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for (name, path) in &files {
        code.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            absolute(path).display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("assets.rs");
    std::fs::write(out, code).unwrap();
}

fn absolute(path: &Path) -> PathBuf {
    path.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
