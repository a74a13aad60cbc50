// Hypercall dispatch, independent of the calling convention (tlfs.md §4). The CPU ports
// (cpu.ts) put the registers into a HypercallRequest; this module validates it in the order of
// §4.9, reads the input block (guest memory or registers alike), runs the call, writes the
// output, and decides on rep continuation (§4.6). Nothing a guest passes can make it throw.
//
// A fast hypercall is a guest's doorbell (VMBus signals the host with one per batch of
// packets), so the path is kept lean: the call is found in a table indexed by its code, the
// control value is split without BigInt arithmetic, result values are made once, and blocks,
// views and the context are reused. No object is made and no try/catch is entered per call.
import { HV_HYP_PAGE_SIZE } from '../../memory/pages.js';
import { decodeControl, decodeControlInto, encodeResult, type Control } from '../../tlfs/control.js';
import { HvStatus } from '../../tlfs/status.js';
import type { Features } from '../features.js';
import type { Partition } from '../partition.js';
import type { Vp } from '../vp.js';

/**
 * An ABI-neutral hypercall: what the registers said, and what the call answers. Each CPU port
 * owns one, for its calling convention, and fills it in for every call: the hot path makes no
 * objects, and fast registers are read and written where the port keeps them.
 */
export abstract class HypercallRequest {
  control = 0n;
  /** Memory-based calls: input and output block GPAs (register values, unchecked). */
  inputGpa = 0n;
  outputGpa = 0n;
  /**
   * Fast calls: how many input registers there are, as qwords in order (x64: RDX, R8, then
   * XMM0..5 low/high when XMM input is offered). Output is written into the ones after the input.
   */
  fastCount = 0;
  /** Whether output may come back in registers (x64 XMM output, arm64 SMCCC 1.2). */
  fastOutput = false;
  /** Fast register `i`, and a write to it (output). */
  abstract fastRegister(i: number): bigint;
  abstract setFastRegister(i: number, v: bigint): void;

  // --- The answer ---
  /** The result value for RAX / EDX:EAX / X0. */
  result = 0n;
  /** Re-execute the call with this control value (transparent continuation, §4.6). */
  restartControl: bigint | undefined = undefined;
  /** The control value said fast. */
  fast = false;
}

/** What a call's body sees: its caller, its decoded control, and its input and output blocks. */
export class CallContext {
  readonly partition!: Partition;
  readonly vp!: Vp;
  readonly control: Control;
  private def!: Entry;
  /** The input block (a copy: the guest cannot change it under the call). */
  readonly input!: Uint8Array;
  /** A view on the input block. */
  readonly in: DataView;
  /** The output block, zeroed; written back to the guest on success. */
  readonly output!: Uint8Array;
  readonly out: DataView;

  constructor(frame: Frame) {
    this.control = frame.control;
    this.in = frame.in;
    this.out = frame.out;
  }

  /** @internal The dispatcher points the context at one call. */
  static aim(ctx: CallContext, partition: Partition, vp: Vp, def: Entry, input: Uint8Array, output: Uint8Array): CallContext {
    const m = ctx as unknown as { -readonly [K in keyof CallContext]: CallContext[K] } & { def: Entry };
    m.partition = partition;
    m.vp = vp;
    m.def = def;
    m.input = input;
    m.output = output;
    return ctx;
  }

  /** Byte offset of the variable header in `input`. */
  get varHeaderOffset(): number {
    return this.def.input;
  }

  /** Byte offset of rep input element `i`. */
  repIn(i: number): number {
    return this.def.input + 8 * this.control.varHeadSize + i * this.def.repInput;
  }

  /** Byte offset of rep output element `i`. */
  repOut(i: number): number {
    return this.def.output + i * this.def.repOutput;
  }
}

export interface HypercallDef {
  readonly code: number;
  readonly rep: boolean;
  /** Size of the fixed input header, bytes. */
  readonly input: number;
  /** Size of the output of a simple call, bytes. */
  readonly output?: number;
  /** Sizes of one rep input and output element. */
  readonly repInput?: number;
  readonly repOutput?: number;
  /** Accepts a variable header (its size in qwords comes from the control value). */
  readonly varHeader?: boolean;
  /** Defaults to true: the call may be made in fast (register) form. */
  readonly fast?: boolean;
  /** The privilege or recommendation the call needs (tlfs.md §4.11); ACCESS_DENIED without it. */
  readonly gate?: (f: Features) => boolean;
  /** A simple call's body; for a rep call, a check of the fixed and variable headers. */
  readonly run?: (ctx: CallContext) => number;
  /** A rep call's work on element `i`. */
  readonly element?: (ctx: CallContext, i: number) => number;
  /**
   * A call whose whole input is one qword and that has no output (SignalEvent, the VMBus
   * doorbell) may give its body on that qword's low and high 32 bits as well: a CPU port then
   * hands it the register without a request, a block or a BigInt. `run` must answer the same
   * (write it as a call of this one on the input block).
   */
  readonly ring?: (partition: Partition, vp: Vp, low: number, high: number) => number;
}

/**
 * A call as the table holds it: every field of HypercallDef present, so that all entries share
 * one shape and reading them stays cheap whichever call is made.
 */
class Entry {
  readonly rep: boolean;
  readonly input: number;
  readonly output: number;
  readonly repInput: number;
  readonly repOutput: number;
  readonly varHeader: boolean;
  readonly fast: boolean;
  readonly gate: ((f: Features) => boolean) | undefined;
  readonly run: ((ctx: CallContext) => number) | undefined;
  readonly element: ((ctx: CallContext, i: number) => number) | undefined;
  /** The body on the input register's halves, for a simple fast call of one input qword and no output: the doorbell lane. */
  readonly ring: ((partition: Partition, vp: Vp, low: number, high: number) => number) | undefined;
  /** The gate's answer for the features last asked about (a partition's never change): the doorbell asks once per partition, not per call. */
  private gatedFor: Features | undefined = undefined;
  private gateOpen = false;

  /** Whether the call is available with `f` (no gate: always). */
  allowed(f: Features): boolean {
    return f === this.gatedFor ? this.gateOpen : this.ask(f);
  }

  private ask(f: Features): boolean {
    this.gateOpen = this.gate === undefined || this.gate(f);
    this.gatedFor = f;
    return this.gateOpen;
  }

  constructor(d: HypercallDef) {
    this.rep = d.rep;
    this.input = d.input;
    this.output = d.output ?? 0;
    this.repInput = d.repInput ?? 0;
    this.repOutput = d.repOutput ?? 0;
    this.varHeader = d.varHeader ?? false;
    this.fast = d.fast ?? true;
    this.gate = d.gate;
    this.run = d.run;
    this.element = d.element;
    this.ring = !this.rep && this.fast && this.output === 0 && this.input <= 8 ? d.ring : undefined;
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** The block checks of tlfs.md §4.7: 8-byte aligned, inside RAM, within one page, not an overlay. */
function blockStatus(p: Partition, gpa: bigint, size: number): number {
  if (size === 0) return HvStatus.SUCCESS;
  if (gpa % 8n !== 0n || gpa > MAX_SAFE) return HvStatus.INVALID_ALIGNMENT;
  const g = Number(gpa);
  if (Math.floor(g / HV_HYP_PAGE_SIZE) !== Math.floor((g + size - 1) / HV_HYP_PAGE_SIZE)) return HvStatus.INVALID_ALIGNMENT;
  if (!p.memory.contains(g, size) || p.memory.overlays.overlaps(g, size)) return HvStatus.INVALID_ALIGNMENT;
  return HvStatus.SUCCESS;
}

/**
 * Result values without reps completed are the same every time: those of the statuses a call
 * answers (all below 0x100, status.ts) are made once, here, and looked up.
 */
const PLAIN_COUNT = 0x100;
const PLAIN: readonly bigint[] = Array.from({ length: PLAIN_COUNT }, (_, status) => encodeResult(status, 0));
const result = (status: number, reps = 0): bigint => (reps === 0 ? (PLAIN[status] ?? encodeResult(status, 0)) : encodeResult(status, reps));

/** `n` rounded up to `m`, a power of two. */
const roundUp = (n: number, m: number): number => (n + m - 1) & -m;
/** The input block as qwords is filled from the fast registers this way when the machine is little-endian. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Everything one invocation works in: input and output blocks, the decoded control, the
 * context. Blocks never exceed a page (memory calls) or the fast registers (at most 128
 * bytes), so one page each suffices. One frame per nesting level, reused: a call made while
 * another is in progress (from a host handler) gets the next level's.
 */
class Frame {
  readonly input = new Uint8Array(HV_HYP_PAGE_SIZE);
  readonly in = new DataView(this.input.buffer);
  readonly in64 = new BigUint64Array(this.input.buffer);
  readonly output = new Uint8Array(HV_HYP_PAGE_SIZE);
  readonly out = new DataView(this.output.buffer);
  readonly control: Control = decodeControl(0n);
  readonly ctx = new CallContext(this);
  /** The blocks' views of the last sizes asked for: a call code asks for the same each time. */
  private inView = this.input.subarray(0, 0);
  private outView = this.output.subarray(0, 0);

  inputOf(size: number): Uint8Array {
    if (this.inView.length !== size) this.inView = this.input.subarray(0, size);
    return this.inView;
  }
  outputOf(size: number): Uint8Array {
    if (this.outView.length !== size) this.outView = this.output.subarray(0, size);
    return this.outView;
  }
}

/** Call codes are 16 bits: the table has a slot for each. */
const CODES = 0x10000;
const CODE_MASK = CODES - 1;

export class HypercallDispatcher {
  /** The calls, indexed by call code. */
  private readonly table: (Entry | undefined)[] = new Array<Entry | undefined>(CODES).fill(undefined);
  /** The calls with a doorbell body (`ring`), indexed by call code: the doorbell lane's table. */
  private readonly rings: (Entry | undefined)[] = new Array<Entry | undefined>(CODES).fill(undefined);
  private readonly frames: Frame[] = [];
  /**
   * Calls in progress. Should host code throw through a call (it must not: its entry points
   * are guarded), the level stays taken and later calls just use the next frame.
   */
  private depth = 0;

  constructor(defs: readonly HypercallDef[]) {
    for (const d of defs) {
      const e = new Entry(d);
      this.table[d.code & 0xffff] = e;
      if (e.ring !== undefined) this.rings[d.code & 0xffff] = e;
    }
  }

  has(code: number): boolean {
    return Number.isInteger(code) && code >= 0 && code < CODES && this.table[code] !== undefined;
  }

  /**
   * Runs one hypercall invocation: reads `req` and writes its answer there. The CPU port that
   * trapped emits its event (cpu.ts), with the registers it came in.
   */
  dispatch(vp: Vp, req: HypercallRequest): void {
    const frame = this.frames[this.depth] ?? (this.frames[this.depth] = new Frame());
    this.depth++;
    const c = decodeControlInto(req.control, frame.control);
    req.fast = c.fast;
    req.restartControl = undefined;
    req.result = this.run(vp, req, c, frame);
    this.depth--;
  }

  /**
   * The doorbell lane, which a CPU port tries first: a fast call whose control value is clean
   * (only the code and the fast bit set: no reps, variable header, nested or reserved bits) and
   * whose definition has a `ring` body (one input qword, no output), such as SignalEvent. It
   * answers exactly as dispatch() would, from the control value and the first fast input
   * register, each in 32-bit halves, and nothing else on its way: no frame, block or context.
   * Undefined: not such a call; take dispatch().
   */
  doorbell(vp: Vp, controlLow: number, controlHigh: number, inputLow: number, inputHigh: number): bigint | undefined {
    const def = this.rings[controlLow & CODE_MASK];
    if (def === undefined || controlLow >>> 16 !== 1 || controlHigh !== 0) return undefined;
    const p = vp.partition;
    const status = def.allowed(p.features) ? def.ring!(p, vp, inputLow, inputHigh) : HvStatus.ACCESS_DENIED;
    return PLAIN[status] ?? encodeResult(status, 0);
  }

  private run(vp: Vp, req: HypercallRequest, c: Control, frame: Frame): bigint {
    const p = vp.partition;
    // §4.9: code, privilege, reserved bits, shape, then the blocks.
    const def = this.table[c.code];
    if (def === undefined) return result(HvStatus.INVALID_HYPERCALL_CODE);
    if (def.gate !== undefined && !def.gate(p.features)) return result(HvStatus.ACCESS_DENIED);
    // Bit 31 (nested) is reserved for a partition that is not a nested root (KVM does the same).
    if (c.reservedSet || c.nested) return result(HvStatus.INVALID_HYPERCALL_INPUT);
    if (def.rep) {
      if (c.repCount === 0 || c.repStart >= c.repCount) return result(HvStatus.INVALID_HYPERCALL_INPUT);
    } else if (c.repCount !== 0 || c.repStart !== 0) {
      return result(HvStatus.INVALID_HYPERCALL_INPUT);
    }
    if (c.varHeadSize !== 0 && !def.varHeader) return result(HvStatus.INVALID_HYPERCALL_INPUT);
    if (c.fast && !def.fast) return result(HvStatus.INVALID_HYPERCALL_INPUT);

    const repInOffset = def.input + 8 * c.varHeadSize;
    const repCount = def.rep ? c.repCount : 0;
    const inSize = repInOffset + repCount * def.repInput;
    const outSize = def.output + repCount * def.repOutput;

    const input = frame.inputOf(inSize);
    if (c.fast) {
      const capacity = req.fastCount * 8;
      if (inSize > capacity) return result(HvStatus.INVALID_HYPERCALL_INPUT);
      if (outSize > 0 && (!req.fastOutput || roundUp(inSize, 16) + outSize > capacity)) return result(HvStatus.INVALID_HYPERCALL_INPUT);
      if (LITTLE_ENDIAN) for (let i = 0; i * 8 < inSize; i++) frame.in64[i] = req.fastRegister(i);
      else for (let i = 0; i * 8 < inSize; i++) frame.in.setBigUint64(i * 8, req.fastRegister(i), true);
    } else {
      // The output GPA is looked at only for calls with output (kvm-unit-tests leaves R8 unset).
      // A block error stops the call before any element: "reps completed" is the rep start.
      const inStatus = blockStatus(p, req.inputGpa, inSize);
      if (inStatus !== HvStatus.SUCCESS) return result(inStatus, c.repStart);
      const outStatus = blockStatus(p, req.outputGpa, outSize);
      if (outStatus !== HvStatus.SUCCESS) return result(outStatus, c.repStart);
      // Input and output must not overlap (tlfs.md 4.7): a continued call would re-read output.
      if (inSize > 0 && outSize > 0 && req.inputGpa < req.outputGpa + BigInt(outSize) && req.outputGpa < req.inputGpa + BigInt(inSize)) {
        return result(HvStatus.INVALID_ALIGNMENT, c.repStart);
      }
      // Copy the whole input before any output is written: the guest cannot change it under us.
      if (inSize > 0) input.set(p.memory.view(Number(req.inputGpa), inSize));
    }

    // Whole qwords, so fast output can be handed back register by register.
    const output = frame.outputOf(roundUp(outSize, 8));
    if (outSize > 0) output.fill(0);
    const ctx = CallContext.aim(frame.ctx, p, vp, def, input, output);

    if (!def.rep) {
      const status = def.run !== undefined ? def.run(ctx) : HvStatus.SUCCESS;
      if (status === HvStatus.SUCCESS && outSize > 0) this.writeOutput(p, req, c, inSize, frame, 0, outSize);
      return result(status);
    }

    const header = def.run !== undefined ? def.run(ctx) : HvStatus.SUCCESS;
    if (header !== HvStatus.SUCCESS) return result(header, c.repStart);
    const quantum = p.config.repQuantum;
    let i = c.repStart;
    let status: number = HvStatus.SUCCESS;
    let done = 0;
    while (i < c.repCount && done < quantum) {
      status = def.element !== undefined ? def.element(ctx, i) : HvStatus.SUCCESS;
      if (status !== HvStatus.SUCCESS) break;
      i++;
      done++;
    }
    // Output of the elements processed in this invocation, and nothing else.
    if (i > c.repStart && def.repOutput !== 0) this.writeOutput(p, req, c, inSize, frame, ctx.repOut(c.repStart), ctx.repOut(i));
    if (status !== HvStatus.SUCCESS || i === c.repCount) return result(status, i);
    if (p.config.repContinuation === 'partial') return result(HvStatus.SUCCESS, i);
    req.restartControl = (req.control & ~(0xfffn << 48n)) | (BigInt(i) << 48n);
    return encodeResult(HvStatus.SUCCESS, i);
  }

  private writeOutput(p: Partition, req: HypercallRequest, c: Control, inSize: number, frame: Frame, from: number, to: number): void {
    if (!c.fast) {
      p.memory.write(Number(req.outputGpa) + from, frame.output.subarray(from, to));
      return;
    }
    // Fast output fills the register pairs after the last input pair (OpenVMM x86.rs/aarch64.rs).
    const base = roundUp(inSize, 16) / 8;
    for (let q = Math.floor(from / 8); q * 8 < to; q++) req.setFastRegister(base + q, frame.out.getBigUint64(q * 8, true));
  }
}
