//! Memory a model configuration asks for, checked before the model is built: a width typed with
//! too many zeros (`--hidden 1000000000000`) or a tampered `config.json` must be an `error:`,
//! not an abort inside the allocator.

use crate::files::memory::check_fits;
use crate::model::config::ModelConfig;

/// Number of parameters of the networks `cfg` describes (encoder, decoder, discriminator, batch
/// classifier; Sup's small networks are covered by the label classifier's layer). A lower bound
/// of what `Scdreamer::new` allocates, in u128 so absurd widths cannot overflow.
pub fn parameter_count(cfg: &ModelConfig) -> u128 {
    let u = |v: usize| v as u128;
    let (g, b, l, y) = (
        u(cfg.n_genes),
        u(cfg.n_batches),
        u(cfg.latent),
        u(cfg.n_labels),
    );
    let h: Vec<u128> = cfg.hidden.iter().map(|&w| u(w)).collect();
    let (first, last) = (
        h.first().copied().unwrap_or(0),
        h.last().copied().unwrap_or(0),
    );
    let chain: u128 = h.windows(2).map(|w| w[0] * w[1]).sum();
    let encoder = (g + b + 1) * first + chain + 2 * (last + 1) * l;
    let decoder = (l + b + 1) * last + chain + 3 * (first + 1) * g + g + 2 * b * g;
    let discriminator = (g + 1) * first + chain + last;
    let classifier = (l + 1) * last + chain + (first + 1) * b;
    let sup = if y > 0 {
        (l + 1) * last + chain + first * y
    } else {
        0
    };
    encoder + decoder + discriminator + classifier + sup
}

/// Bytes training needs at least: every parameter four times (value, gradient, two Adam
/// moments) plus one minibatch's activations (a few cells x genes and cells x widths matrices).
pub fn training_bytes(cfg: &ModelConfig, batch_size: usize) -> u128 {
    let widths: u128 = cfg.hidden.iter().map(|&w| w as u128).sum();
    let activations = batch_size as u128 * (8 * cfg.n_genes as u128 + 8 * widths) * 4;
    parameter_count(cfg) * 16 + activations
}

/// Errors, naming `flags`, when the model of `cfg` (trained with minibatches of `batch_size`
/// cells) cannot fit in memory.
pub fn check_model_fits(cfg: &ModelConfig, batch_size: usize, flags: &str) -> anyhow::Result<()> {
    check_fits(
        training_bytes(cfg, batch_size),
        &format!(
            "{flags} (a model of {} genes, hidden {:?}, latent {}: {} parameters, minibatch {batch_size})",
            cfg.n_genes,
            cfg.hidden,
            cfg.latent,
            parameter_count(cfg)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::model::scdreamer::Scdreamer;
    use rand::SeedableRng;

    /// The count is a lower bound of what the model really holds, and not far below it.
    #[test]
    fn parameter_count_bounds_the_real_model() {
        for (labels, hidden) in [(0, vec![64]), (3, vec![32, 16]), (0, vec![16, 8, 4])] {
            let cfg = ModelConfig::default_preset(50, 3, labels);
            let cfg = ModelConfig { hidden, ..cfg };
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            let m = Scdreamer::new(&Cpu::new(), cfg.clone(), &mut rng);
            let real: usize = m.params.iter().map(|(_, _, r, c, _)| r * c).sum();
            let est = parameter_count(&cfg) as usize;
            assert!(est <= real && est * 2 > real, "{est} vs {real}");
        }
    }

    #[test]
    fn absurd_width_is_an_error_naming_the_flag() {
        let mut cfg = ModelConfig::default_preset(800, 3, 0);
        cfg.hidden = vec![1_000_000_000_000];
        let e = check_model_fits(&cfg, 128, "--hidden")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--hidden") && e.contains("memory"), "{e}");
    }
}
