//! Device interrupts by CPU, from `/proc/interrupts`: which CPU the disk's and the network's
//! interrupts land on.
//!
//! A device interrupt taken on the hot CPU (`run.hot_cpu`) stops the tick's path for as long
//! as its handler runs, and the thread's own context switches do not show it. On the 2-vCPU
//! machine of BENCHMARKS.md (fourteenth sitting) every interrupt of the virtual disk landed on
//! CPU 1; pinned there at 10k ticks/s, the slowest 1 % of ticks spent most of their time off
//! the CPU, and with the database on tmpfs (no disk interrupts) p99 and p99.9 fell in every
//! round. So start-up warns when the hot CPU is the one a busy device interrupts, and `bench`
//! reports the device interrupts each CPU took during its window.
//!
//! Only numbered lines are devices (their CPUs are set with `/proc/irq/N/smp_affinity`); the
//! per-CPU system lines (`LOC`, `RES`, `CAL`, …) are the kernel's own and are left out.

use std::collections::BTreeMap;

/// One device's interrupt line: how many interrupts each CPU has taken since boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLine {
    /// The IRQ number, as `/proc/irq/<irq>` names it.
    pub irq: u32,
    /// The device's action name (`virtio1-req.0`, `nvme0q1`, `eth0-rx-0`), or the controller
    /// fields when the line has none.
    pub name: String,
    /// Interrupts taken, by CPU number.
    pub per_cpu: BTreeMap<usize, u64>,
}

impl DeviceLine {
    /// Every CPU's interrupts on this line.
    pub fn total(&self) -> u64 {
        self.per_cpu.values().fold(0, |a, &n| a.saturating_add(n))
    }
}

/// The device lines of `/proc/interrupts` text. The header names the CPUs (`CPU0 CPU1 …`,
/// online ones only, so the columns are matched to it, not counted from 0). Lines that do
/// not read as a device line (system lines, a truncated line) are skipped.
pub fn parse(text: &str) -> Vec<DeviceLine> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let cpus: Vec<usize> = header
        .split_whitespace()
        .filter_map(|c| c.strip_prefix("CPU")?.parse().ok())
        .collect();
    lines
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let irq: u32 = fields.next()?.strip_suffix(':')?.parse().ok()?;
            let mut per_cpu = BTreeMap::new();
            for &cpu in &cpus {
                per_cpu.insert(cpu, fields.next()?.parse().ok()?);
            }
            // The controller and its line (`PCI-MSIX-0000:00:02.0 1-edge`), then the action.
            let rest: Vec<&str> = fields.collect();
            let name = match rest.get(2..) {
                Some(actions) if !actions.is_empty() => actions.join(" "),
                _ => rest.join(" "),
            };
            Some(DeviceLine { irq, name, per_cpu })
        })
        .collect()
}

/// The device lines of this machine (`None` where `/proc/interrupts` cannot be read).
pub fn read() -> Option<Vec<DeviceLine>> {
    std::fs::read_to_string("/proc/interrupts")
        .ok()
        .map(|t| parse(&t))
}

/// Device interrupts each CPU took between two readings (a line or CPU absent from `before`
/// counts from zero; a counter that went back counts nothing).
pub fn taken_between(before: &[DeviceLine], after: &[DeviceLine]) -> BTreeMap<usize, u64> {
    let mut by_cpu = BTreeMap::new();
    for line in after {
        let earlier = before.iter().find(|b| b.irq == line.irq);
        for (&cpu, &n) in &line.per_cpu {
            let was = earlier
                .and_then(|b| b.per_cpu.get(&cpu))
                .copied()
                .unwrap_or(0);
            let sum = by_cpu.entry(cpu).or_insert(0u64);
            *sum = sum.saturating_add(n.saturating_sub(was));
        }
    }
    by_cpu
}

/// A device whose interrupts land mostly on one CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crowding {
    pub irq: u32,
    pub name: String,
    /// Interrupts taken on that CPU, and on every CPU.
    pub on_cpu: u64,
    pub total: u64,
}

/// Devices that have interrupted `cpu` at least `min` times, and more than every other CPU
/// together: the ones that would stop a thread pinned there.
pub fn crowding(lines: &[DeviceLine], cpu: usize, min: u64) -> Vec<Crowding> {
    lines
        .iter()
        .filter_map(|l| {
            let on_cpu = l.per_cpu.get(&cpu).copied()?;
            let others = l
                .per_cpu
                .iter()
                .filter(|&(&c, _)| c != cpu)
                .fold(0u64, |a, (_, &n)| a.saturating_add(n));
            (on_cpu >= min && on_cpu > others).then(|| Crowding {
                irq: l.irq,
                name: l.name.clone(),
                on_cpu,
                total: l.total(),
            })
        })
        .collect()
}

/// Interrupts since boot under which a device is worth a warning: a disk or a network card
/// in use takes thousands within minutes; a console or an ACPI line stays under.
pub const CROWDING_MIN: u64 = 1_000;

/// Warns, once per device, when the hot CPU installed by `run.hot_cpu` is the one a busy
/// device interrupts. Call it once logging is up.
pub fn warn_if_hot_cpu_crowded() {
    let (Some(p), Some(lines)) = (crate::affinity::installed(), read()) else {
        return;
    };
    for c in crowding(&lines, p.hot, CROWDING_MIN) {
        tracing::warn!(
            hot_cpu = p.hot,
            irq = c.irq,
            device = %c.name,
            on_hot_cpu = c.on_cpu,
            total = c.total,
            "run.hot_cpu takes most of this device's interrupts, and each one stops the tick's \
             path: give the hot arbiter another CPU, or move the interrupt off it \
             (/proc/irq/{}/smp_affinity_list)",
            c.irq
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/interrupts` of the 2-vCPU Firecracker VM of BENCHMARKS.md (trimmed).
    const VM: &str = "           CPU0       CPU1       
 24:          1          0  IO-APIC   5-edge      ACPI:Ged
 26:          0         14  IO-APIC   4-edge      ttyS0
 29:          0          0 PCI-MSIX-0000:00:01.0   1-edge      virtio0-inflate
 36:          0    1884572  PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0
 39:      19900          0 PCI-MSIX-0000:00:03.0   2-edge      virtio2-output.0
 42:          0      46340 PCI-MSIX-0000:00:04.0   2-edge      virtio3-tx
NMI:          0          0   Non-maskable interrupts
LOC:   11702951   10419645   Local timer interrupts
CAL:    7183591    6831537   Function call interrupts
ERR:          0
MIS:          0
";

    #[test]
    fn device_lines_are_read_by_the_header_s_cpus_and_system_lines_left_out() {
        let lines = parse(VM);
        let irqs: Vec<u32> = lines.iter().map(|l| l.irq).collect();
        assert_eq!(irqs, [24, 26, 29, 36, 39, 42]);
        let disk = &lines[3];
        assert_eq!(disk.name, "virtio1-req.0");
        assert_eq!(disk.per_cpu, BTreeMap::from([(0, 0), (1, 1_884_572)]));
        assert_eq!(disk.total(), 1_884_572);
        assert_eq!(lines[0].name, "ACPI:Ged");
    }

    #[test]
    fn columns_follow_the_header_when_cpus_are_offline() {
        // CPU 1 offline: the second column is CPU 2.
        let text = "     CPU0  CPU2\n 40:  5  700  IR-PCI-MSI 524288-edge  nvme0q1\n 41: 3\n";
        let lines = parse(text);
        assert_eq!(
            lines.len(),
            1,
            "the truncated line 41 is skipped: {lines:?}"
        );
        assert_eq!(lines[0].per_cpu, BTreeMap::from([(0, 5), (2, 700)]));
        assert_eq!(lines[0].name, "nvme0q1");
        assert!(parse("").is_empty());
    }

    #[test]
    fn a_device_crowds_the_cpu_that_takes_most_of_its_interrupts() {
        let lines = parse(VM);
        let on_1 = crowding(&lines, 1, CROWDING_MIN);
        let names: Vec<&str> = on_1.iter().map(|c| c.name.as_str()).collect();
        // The disk and the network's transmit queue; the console (14) is under the minimum.
        assert_eq!(names, ["virtio1-req.0", "virtio3-tx"]);
        assert_eq!((on_1[0].on_cpu, on_1[0].total), (1_884_572, 1_884_572));
        let on_0 = crowding(&lines, 0, CROWDING_MIN);
        assert_eq!(on_0.len(), 1);
        assert_eq!(on_0[0].name, "virtio2-output.0");
        // Shared evenly, a device crowds neither CPU.
        let even = parse("  CPU0 CPU1\n 50: 5000 5000 PCI-MSI 1-edge eth0\n");
        assert!(crowding(&even, 0, CROWDING_MIN).is_empty());
        assert!(crowding(&even, 1, CROWDING_MIN).is_empty());
        // A CPU the file does not list is crowded by nothing.
        assert!(crowding(&lines, 7, 0).is_empty());
        // Counters at the top of their range add up without overflowing.
        let huge = parse(&format!(
            "  CPU0 CPU1\n 51: {max} {max} PCI-MSI 1-edge eth1\n 52: {max} 0 PCI-MSI 2-edge eth2\n",
            max = u64::MAX
        ));
        assert_eq!(huge[0].total(), u64::MAX);
        let on_0: Vec<u32> = crowding(&huge, 0, CROWDING_MIN)
            .iter()
            .map(|c| c.irq)
            .collect();
        assert_eq!(
            on_0,
            [52],
            "an even split crowds neither CPU, even at the top"
        );
        assert_eq!(taken_between(&[], &huge)[&0], u64::MAX);
    }

    #[test]
    fn interrupts_taken_between_two_readings_by_cpu() {
        let before = parse(VM);
        let after = parse(
            &VM.replace("1884572", "1886072")
                .replace("19900", "19950")
                .replace(" 24:          1", " 24:          0"),
        );
        // A counter that went back (24 on CPU 0) counts nothing; 1,500 disk interrupts on
        // CPU 1, 50 on CPU 0.
        assert_eq!(
            taken_between(&before, &after),
            BTreeMap::from([(0, 50), (1, 1_500)])
        );
        // A line that appeared counts from zero.
        let added = format!("{VM} 60:          7          9  PCI-MSI 2-edge  new\n");
        let added = parse(&added);
        assert_eq!(
            taken_between(&before, &added),
            BTreeMap::from([(0, 7), (1, 9)])
        );
    }
}
