//! Mounts a LossyFs on each directory named on the command line and keeps them mounted until
//! stdin reaches its end; then prints each filesystem's stats and unmounts. For experiments by
//! hand (e.g. a `herald dev` cluster on it): `cargo run -p herald-lossyfs --example lossyfs-mount
//! -- DIR...`. A line `cut` on stdin cuts the power of every mount (stop the processes first).

use std::io::BufRead;
use std::path::PathBuf;

use herald_lossyfs::{LossyFs, Tear};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    LossyFs::available()?;
    let dirs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if dirs.is_empty() {
        return Err("usage: lossyfs-mount DIR... (each an existing empty directory)".into());
    }
    let mut mounts = Vec::new();
    for d in &dirs {
        mounts.push(LossyFs::mount(d)?);
        println!("mounted {}", d.display());
    }
    for line in std::io::stdin().lock().lines() {
        if line?.trim() == "cut" {
            for m in &mounts {
                m.power_cut(Tear::None)?;
            }
            println!("power cut");
        }
    }
    for m in &mounts {
        println!("{}: {:?}", m.mountpoint().display(), m.stats());
    }
    Ok(())
}
