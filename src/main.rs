use clap::Parser;

fn main() {
    let cli = scdreamer::cli::Cli::parse();
    if let Err(e) = scdreamer::cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
