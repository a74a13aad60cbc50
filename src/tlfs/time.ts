// Reference time, the reference TSC page and synthetic timers (tlfs.md §6).
// Linux: include/hyperv/hvgdk_mini.h, include/clocksource/hyperv_timer.h.
import { bits, struct, u32, u64 } from './struct.js';

/** Reference counter frequency: 100 ns ticks (HV_CLOCK_HZ). */
export const HV_CLOCK_HZ = 10_000_000;

export const ReferenceTscMsr = bits('hv_reference_tsc_msr', 'u64', { enable: 1, reserved: 11, pfn: 52 });

/** The reference TSC page (`struct ms_hyperv_tsc_page`); the rest of the 4 KiB page is reserved. */
export const TscPage = struct('ms_hyperv_tsc_page', {
  tsc_sequence: u32,
  reserved1: u32,
  tsc_scale: u64,
  tsc_offset: u64,
});

export const StimerConfig = bits('hv_stimer_config', 'u64', {
  enable: 1,
  periodic: 1,
  lazy: 1,
  auto_enable: 1,
  apic_vector: 8,
  direct_mode: 1,
  reserved_z0: 3,
  sintx: 4,
  reserved_z1: 44,
});

/** Payload of HVMSG_TIMER_EXPIRED (tlfs.md §6.4). */
export const TimerMessagePayload = struct('hv_timer_message_payload', {
  timer_index: u32,
  reserved: u32,
  expiration_time: u64,
  delivery_time: u64,
});

/** Linux's stimer0 clockevent limits (HV_MIN_DELTA_TICKS, HV_MAX_MAX_DELTA_TICKS). */
export const HV_MIN_DELTA_TICKS = 1;
export const HV_MAX_MAX_DELTA_TICKS = 0xffffffff;
