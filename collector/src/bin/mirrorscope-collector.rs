//! `mirrorscope-collector`: aggregates node reports (not yet implemented; see the collector issue).

fn main() {
    eprintln!("mirrorscope-collector: not implemented yet");
    std::process::exit(2);
}
