//! CPU embeddings stay bit-identical for the same seed and threads wherever the math did not
//! change: the demo's embedding for the default, Sup and authors' presets against hashes
//! recorded before a restructuring (tests/golden/demo_embeddings.txt says how).

#![cfg(feature = "h5ad")]

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_scdreamer");

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn embedding_hash(path: &Path) -> u64 {
    let f = hdf5::File::open(path).expect("output opens");
    let z: Vec<f32> = f
        .dataset("obsm/X_scdreamer")
        .expect("obsm/X_scdreamer")
        .read_raw()
        .expect("embedding reads");
    let bytes: Vec<u8> = z.iter().flat_map(|v| v.to_le_bytes()).collect();
    fnv1a64(&bytes)
}

#[test]
fn fnv_matches_its_published_test_vector() {
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
}

#[test]
fn demo_embeddings_are_bit_identical_to_the_recorded_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let golden = std::fs::read_to_string(root.join("tests/golden/demo_embeddings.txt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for line in golden
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut parts = line.split_whitespace();
        let (name, want) = (parts.next().unwrap(), parts.next().unwrap());
        let extra: Vec<&str> = parts.collect();
        let out = dir.path().join(format!("{name}.h5ad"));
        let o = Command::new(BIN)
            .args(["integrate", "--input"])
            .arg(root.join("data/demo.h5ad"))
            .arg("--output")
            .arg(&out)
            .args(["--epochs", "4", "--seed", "0", "--threads", "2", "--quiet"])
            .args(&extra)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got = format!("{:016x}", embedding_hash(&out));
        assert_eq!(
            got, want,
            "{name} ({extra:?}): the CPU embedding changed; if the math changed on purpose, \
             say so in README and update tests/golden/demo_embeddings.txt"
        );
        checked += 1;
    }
    assert_eq!(
        checked, 5,
        "three presets, Sup with the cross-entropy and Sup without its label balance recorded"
    );
}
