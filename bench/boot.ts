// Boot time with the default devices open, in-thread and with the guest in a worker, each against
// an empty VM's start measured in the same run: a machine with no VMBus and no devices booting
// the same kernel, in the same mode. Wall-clock time of the whole boot; virtual time is the same.
import { Machine } from '../src/vm/machine.js';
import { ThreadedMachine } from '../src/vm/threaded/machine.js';
import type { Measurement, MeasurementGroup } from './index.js';
import { median } from './stats.js';

const EMPTY = { devices: [], vmbus: false as const, kernel: { vmbusSynic: false, vmbus: false } };

function inThreadMs(config: ConstructorParameters<typeof Machine>[0], rounds: number): number {
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    const m = new Machine({ vps: 2, memory: 256 << 20, ...config });
    m.boot();
    if (m.kernel.stage !== 'booted') throw new Error('boot failed');
    times.push(performance.now() - t0);
  }
  return median(times);
}

async function threadedMs(config: ConstructorParameters<typeof ThreadedMachine>[0], rounds: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    // speed 100: virtual time runs ahead of the wall clock, so the figure is the machinery's cost.
    const m = new ThreadedMachine({ vps: 2, memory: 256 << 20, speed: 100, ...config });
    const r = await m.run<string>(new URL('../src/vm/threaded/workloads/boot.js', import.meta.url), undefined, 60_000);
    if (r.error || r.result !== 'booted') throw new Error(`threaded boot failed: ${r.error ?? r.result}`);
    times.push(performance.now() - t0);
  }
  return median(times);
}


const NAMES = [
  'baseline: empty VM start, in-thread',
  'boot with the default devices open, in-thread',
  'baseline: empty VM start, guest in a worker',
  'boot with the default devices open, guest in a worker',
] as const;

export function bootGroup(): MeasurementGroup {
  return { names: NAMES, run: bootMeasurements };
}

async function bootMeasurements(): Promise<Measurement[]> {
  const emptyIn = inThreadMs(EMPTY, 15);
  const fullIn = inThreadMs({}, 15);
  const emptyThreaded = await threadedMs(EMPTY, 3);
  const fullThreaded = await threadedMs({}, 3);
  return [
    { name: NAMES[0], value: emptyIn, unit: 'ms' },
    { name: NAMES[1], value: fullIn, unit: 'ms', ratio: fullIn / emptyIn, baseline: NAMES[0] },
    { name: NAMES[2], value: emptyThreaded, unit: 'ms' },
    { name: NAMES[3], value: fullThreaded, unit: 'ms', ratio: fullThreaded / emptyThreaded, baseline: NAMES[2] },
  ];
}
