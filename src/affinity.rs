//! A CPU of its own for the hot arbiter (`run.hot_cpu`).
//!
//! The tick's path (BinanceFeed → QuoteEngine → OrderManager ⇄ RiskGuard) runs on one thread.
//! Left to the scheduler, the SQLite writer, the venue arbiter and the exporter run on the same
//! CPU between two ticks, and each tick then starts on caches they filled. Pinned, the hot
//! thread has one CPU and every other thread of the process shares the rest.
//!
//! It takes two steps, because a thread inherits the CPUs of the thread that spawns it:
//! 1. [`install`] before any other thread exists (at the top of `run` and `bench`): the main
//!    thread, and so every thread it spawns (SQLite, the venue arbiter, the exporter), keeps
//!    off the hot CPU;
//! 2. [`take_hot`] at the end of `Pipeline::start`, on the main thread, which is the hot
//!    arbiter: from then on it runs on the hot CPU only.
//!
//! A thread spawned later from the hot one (the bench's pacer) calls [`keep_off`] itself.
//! Without `run.hot_cpu` nothing is installed and nothing is pinned.

use std::sync::OnceLock;

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

/// Which CPU the hot arbiter runs on, and which the other threads share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinning {
    pub hot: usize,
    pub others: Vec<usize>,
}

/// Why the threads cannot be pinned as `run.hot_cpu` asks.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("run.hot_cpu: CPU {cpu} is not one this process may run on (it may use {allowed:?})")]
    NotAllowed { cpu: usize, allowed: Vec<usize> },
    #[error(
        "run.hot_cpu: this process may use CPU {cpu} only; pinning needs another for the other threads"
    )]
    NoOther { cpu: usize },
    #[error("run.hot_cpu: cannot read or set the CPU affinity: {0}")]
    Os(#[from] nix::Error),
    #[error("run.hot_cpu: the threads were pinned already")]
    Twice,
}

impl Pinning {
    /// The plan for hot CPU `hot` when the process may use `allowed`.
    ///
    /// # Errors
    /// [`PinError::NotAllowed`] or [`PinError::NoOther`].
    pub fn plan(hot: usize, allowed: &[usize]) -> Result<Pinning, PinError> {
        if !allowed.contains(&hot) {
            return Err(PinError::NotAllowed {
                cpu: hot,
                allowed: allowed.to_vec(),
            });
        }
        let others: Vec<usize> = allowed.iter().copied().filter(|&c| c != hot).collect();
        if others.is_empty() {
            return Err(PinError::NoOther { cpu: hot });
        }
        Ok(Pinning { hot, others })
    }

    /// The plan for hot CPU `hot` against the CPUs the calling thread may use.
    ///
    /// # Errors
    /// As [`Self::plan`], or the affinity cannot be read.
    pub fn for_this_thread(hot: usize) -> Result<Pinning, PinError> {
        Self::plan(hot, &current_cpus()?)
    }
}

/// The CPUs the calling thread may run on.
///
/// # Errors
/// The affinity cannot be read.
pub fn current_cpus() -> Result<Vec<usize>, PinError> {
    let set = sched_getaffinity(Pid::from_raw(0))?;
    Ok((0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect())
}

fn set_current(cpus: &[usize]) -> Result<(), PinError> {
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c)?;
    }
    sched_setaffinity(Pid::from_raw(0), &set)?;
    Ok(())
}

/// The plan installed for this process, if any.
static INSTALLED: OnceLock<Pinning> = OnceLock::new();

/// Installs `p` for this process and keeps the calling thread (and so every thread it spawns
/// from now on) off the hot CPU. A second plan is refused.
///
/// # Errors
/// The affinity cannot be set.
pub fn install(p: Pinning) -> Result<(), PinError> {
    keep_off(&p)?;
    INSTALLED.set(p).map_err(|_| PinError::Twice)
}

/// The plan installed for this process, if any.
pub fn installed() -> Option<&'static Pinning> {
    INSTALLED.get()
}

/// Keeps the calling thread, and every thread it spawns from now on, off the hot CPU.
///
/// # Errors
/// The affinity cannot be set.
pub fn keep_off(p: &Pinning) -> Result<(), PinError> {
    set_current(&p.others)
}

/// Moves the calling thread (the hot arbiter) onto the hot CPU alone.
///
/// # Errors
/// The affinity cannot be set.
pub fn take_hot(p: &Pinning) -> Result<(), PinError> {
    set_current(&[p.hot])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_needs_the_hot_cpu_allowed_and_another_beside_it() {
        assert_eq!(
            Pinning::plan(1, &[0, 1, 2]).ok(),
            Some(Pinning {
                hot: 1,
                others: vec![0, 2]
            })
        );
        let e = Pinning::plan(3, &[0, 1]).expect_err("not allowed");
        assert!(matches!(e, PinError::NotAllowed { cpu: 3, .. }), "{e}");
        assert!(e.to_string().starts_with("run.hot_cpu: CPU 3"), "{e}");
        let e = Pinning::plan(0, &[0]).expect_err("alone");
        assert!(matches!(e, PinError::NoOther { cpu: 0 }), "{e}");
    }

    /// Runs on a thread of its own: affinity is per thread and inherited at spawn.
    #[test]
    fn threads_spawned_before_the_hot_thread_takes_its_cpu_keep_off_it() {
        let checked = std::thread::spawn(|| {
            let allowed = current_cpus().expect("affinity readable");
            let Some(&hot) = allowed.last() else {
                panic!("no CPU allowed");
            };
            let p = match Pinning::plan(hot, &allowed) {
                Ok(p) => p,
                // One CPU: nothing to pin, and the plan says why.
                Err(PinError::NoOther { cpu }) => return assert_eq!(cpu, hot),
                Err(e) => panic!("{e}"),
            };
            keep_off(&p).expect("keep off");
            let spawned_before = std::thread::spawn(current_cpus);
            take_hot(&p).expect("take hot");
            assert_eq!(current_cpus().expect("read"), vec![p.hot]);
            let before = spawned_before.join().expect("thread").expect("read");
            assert_eq!(
                before, p.others,
                "a thread spawned before keeps off the hot CPU"
            );
            // A thread spawned from the hot one starts there, and leaves by keeping off.
            let spawned_after = std::thread::spawn(move || {
                let at_spawn = current_cpus().expect("read");
                keep_off(&p).expect("keep off");
                (at_spawn, current_cpus().expect("read"), p)
            });
            let (at_spawn, after, p) = spawned_after.join().expect("thread");
            assert_eq!(at_spawn, vec![p.hot]);
            assert_eq!(after, p.others);
        });
        checked.join().expect("the check ran");
    }
}
