//! Command-line interface. Verbs mirror the scvi-tools calls a user knows:
//! `inspect` (a first look at a file), `integrate` (setup + train + get_latent_representation),
//! `embed` (a saved model applied to new cells), `simulate` and `bench`.

pub mod args;
pub mod embed;
mod embedding_input;
pub mod evaluate;
mod evaluate_args;
mod evaluate_report;
mod evaluate_scores;
pub mod inspect;
pub mod integrate;
mod integrate_checks;
mod integrate_config;
mod integrate_input;
pub mod map;
pub mod saved_model_run;
pub mod simulate;

pub use args::{Cli, Command};

/// Run one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Inspect(a) => inspect::run(&a),
        Command::Integrate(a) => {
            let (input, output) = integrate::input_output(&a)?;
            evaluate::check_label_key(&a, &input)?;
            integrate::run(&a)?;
            evaluate::after_integrate(&a, &output)
        }
        Command::Embed(a) => embed::run(&a),
        Command::Map(a) => map::run(&a),
        Command::Simulate(a) => simulate::run(&a),
        Command::Evaluate(a) => evaluate::run(&a),
    }
}
