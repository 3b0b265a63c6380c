//! `--device auto|cpu|cuda` resolution: never panics; `cuda` without a GPU is a clear error and
//! `auto` falls back to the CPU with one line saying why. On a GPU machine both open the GPU.

use scdreamer::backend::device::{Device, DeviceRequest, probe_gpu, resolve};

#[test]
fn cpu_is_always_the_cpu() {
    let d = resolve(DeviceRequest::Cpu).expect("cpu always resolves");
    assert!(!d.is_cuda());
    assert_eq!(d.describe(), "device: cpu");
}

#[test]
fn auto_and_cuda_agree_with_the_probe() {
    match probe_gpu() {
        Err(why) => {
            assert!(
                !why.is_empty() && !why.contains('\n'),
                "reason is one line: {why:?}"
            );
            let err = match resolve(DeviceRequest::Cuda) {
                Ok(_) => panic!("--device cuda must fail without a GPU"),
                Err(e) => format!("{e:#}"),
            };
            assert!(
                err.contains("--device cuda") && err.contains(&why),
                "clear error: {err}"
            );
            match resolve(DeviceRequest::Auto).expect("auto never fails") {
                Device::Cpu { note: Some(note) } => {
                    assert!(note.contains(&why), "auto says why: {note}");
                    eprintln!(
                        "auto fell back: {}",
                        Device::Cpu { note: Some(note) }.describe()
                    );
                }
                other => panic!(
                    "auto without a GPU must be the CPU with a note: {}",
                    other.describe()
                ),
            }
        }
        #[allow(unreachable_patterns)]
        Ok(_) => {
            let auto = resolve(DeviceRequest::Auto).expect("auto resolves");
            assert!(auto.is_cuda(), "auto picks the GPU when one opens");
            let cuda = resolve(DeviceRequest::Cuda).expect("cuda resolves on a GPU machine");
            eprintln!("{}", cuda.describe());
        }
    }
}
