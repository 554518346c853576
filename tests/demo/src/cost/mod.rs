//! What a run costs beyond its wall time, measured from outside the program so that the same
//! figures hold for image-cloner and for plain skopeo: CPU time per process ([`cpu`]), requests
//! and connections per registry ([`registry_log`]), skopeo processes started
//! ([`skopeo_record`]), and how full image-cloner kept its copy slots ([`copy_slots`], from its
//! own log). `make bench` reports them beside its ratios: on a loaded 2-core machine
//! wall time is noise, CPU time and counts are not.

pub mod copy_slots;
pub mod cpu;
pub mod registry_log;
pub mod skopeo_record;
