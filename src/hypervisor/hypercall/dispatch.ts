// Hypercall dispatch, independent of the calling convention (tlfs.md §4). The ABI adapters
// (abi.ts) turn registers into a HypercallRequest; this module validates it in the order of
// §4.9, reads the input block (guest memory or registers alike), runs the call, writes the
// output, and decides on rep continuation (§4.6). Nothing a guest passes can make it throw.
import { HV_HYP_PAGE_SIZE } from '../../memory/pages.js';
import { decodeControl, encodeResult, type Control } from '../../tlfs/control.js';
import { HvStatus } from '../../tlfs/status.js';
import type { Features } from '../features.js';
import type { Partition } from '../partition.js';
import type { Vp } from '../vp.js';

/** An ABI-neutral hypercall: what the registers said. */
export interface HypercallRequest {
  readonly control: bigint;
  /** Memory-based calls: input and output block GPAs (register values, unchecked). */
  readonly inputGpa: bigint;
  readonly outputGpa: bigint;
  /**
   * Fast calls: the input registers as qwords in order (x64: RDX, R8, then XMM0..5 low/high
   * when XMM input is offered). Output is written back into the pairs after the input.
   */
  readonly fastRegisters: bigint[];
  /** Whether output may come back in registers (x64 XMM output, arm64 SMCCC 1.2). */
  readonly fastOutput: boolean;
}

export interface HypercallResponse {
  /** The result value for RAX / EDX:EAX / X0. */
  readonly result: bigint;
  /** Re-execute the call with this control value (transparent continuation, §4.6). */
  readonly restartControl?: bigint;
}

/** What a call's body sees: its caller, its decoded control, and its input and output blocks. */
export class CallContext {
  /** A view on the input block. */
  readonly in: DataView;

  constructor(
    readonly partition: Partition,
    readonly vp: Vp,
    readonly control: Control,
    private readonly def: HypercallDef,
    /** The input block (a copy: the guest cannot change it under the call). */
    readonly input: Uint8Array,
    inView: DataView,
    /** The output block, zeroed; written back to the guest on success. */
    readonly output: Uint8Array,
    readonly out: DataView,
  ) {
    this.in = inView;
  }

  /** Byte offset of the variable header in `input`. */
  get varHeaderOffset(): number {
    return this.def.input;
  }

  /** Byte offset of rep input element `i`. */
  repIn(i: number): number {
    return this.def.input + 8 * this.control.varHeadSize + i * (this.def.repInput ?? 0);
  }

  /** Byte offset of rep output element `i`. */
  repOut(i: number): number {
    return (this.def.output ?? 0) + i * (this.def.repOutput ?? 0);
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

/** Responses without reps completed are the same every time: build each once. */
const plain = new Map<number, HypercallResponse>();
const fail = (status: number, reps = 0): HypercallResponse => {
  if (reps !== 0) return { result: encodeResult(status, reps) };
  let r = plain.get(status);
  if (!r) plain.set(status, (r = { result: encodeResult(status, 0) }));
  return r;
};

const roundUp = (n: number, m: number): number => Math.ceil(n / m) * m;

/**
 * Input and output blocks of one invocation. Blocks never exceed a page (memory calls) or the
 * fast registers (at most 128 bytes), so one page each suffices; the dispatcher reuses a pair
 * and takes fresh ones only if a call re-enters it.
 */
class Blocks {
  readonly input = new Uint8Array(HV_HYP_PAGE_SIZE);
  readonly in = new DataView(this.input.buffer);
  readonly output = new Uint8Array(HV_HYP_PAGE_SIZE);
  readonly out = new DataView(this.output.buffer);
}

export class HypercallDispatcher {
  private readonly defs = new Map<number, HypercallDef>();
  private readonly blocks = new Blocks();
  private depth = 0;

  constructor(defs: readonly HypercallDef[]) {
    for (const d of defs) this.defs.set(d.code, d);
  }

  has(code: number): boolean {
    return this.defs.has(code);
  }

  /**
   * Runs one hypercall invocation. `c` is `req.control` decoded (the ABI adapter has it already).
   * The CPU port that trapped emits its event (cpu.ts), with the registers it came in.
   */
  dispatch(vp: Vp, req: HypercallRequest, c: Control = decodeControl(req.control)): HypercallResponse {
    const blocks = this.depth === 0 ? this.blocks : new Blocks();
    this.depth++;
    try {
      return this.run(vp, req, c, blocks);
    } finally {
      this.depth--;
    }
  }

  private run(vp: Vp, req: HypercallRequest, c: Control, blocks: Blocks): HypercallResponse {
    const p = vp.partition;
    // §4.9: code, privilege, reserved bits, shape, then the blocks.
    const def = this.defs.get(c.code);
    if (!def) return fail(HvStatus.INVALID_HYPERCALL_CODE);
    if (def.gate && !def.gate(p.features)) return fail(HvStatus.ACCESS_DENIED);
    // Bit 31 (nested) is reserved for a partition that is not a nested root (KVM does the same).
    if (c.reservedSet || c.nested) return fail(HvStatus.INVALID_HYPERCALL_INPUT);
    if (def.rep) {
      if (c.repCount === 0 || c.repStart >= c.repCount) return fail(HvStatus.INVALID_HYPERCALL_INPUT);
    } else if (c.repCount !== 0 || c.repStart !== 0) {
      return fail(HvStatus.INVALID_HYPERCALL_INPUT);
    }
    if (c.varHeadSize !== 0 && !def.varHeader) return fail(HvStatus.INVALID_HYPERCALL_INPUT);
    if (c.fast && def.fast === false) return fail(HvStatus.INVALID_HYPERCALL_INPUT);

    const repInOffset = def.input + 8 * c.varHeadSize;
    const repCount = def.rep ? c.repCount : 0;
    const inSize = repInOffset + repCount * (def.repInput ?? 0);
    const outSize = (def.output ?? 0) + repCount * (def.repOutput ?? 0);

    const input = blocks.input.subarray(0, inSize);
    if (c.fast) {
      const capacity = req.fastRegisters.length * 8;
      if (inSize > capacity) return fail(HvStatus.INVALID_HYPERCALL_INPUT);
      if (outSize > 0 && (!req.fastOutput || roundUp(inSize, 16) + outSize > capacity)) return fail(HvStatus.INVALID_HYPERCALL_INPUT);
      for (let i = 0; i * 8 < inSize; i++) blocks.in.setBigUint64(i * 8, req.fastRegisters[i] ?? 0n, true);
    } else {
      // The output GPA is looked at only for calls with output (kvm-unit-tests leaves R8 unset).
      // A block error stops the call before any element: "reps completed" is the rep start.
      const inStatus = blockStatus(p, req.inputGpa, inSize);
      if (inStatus !== HvStatus.SUCCESS) return fail(inStatus, c.repStart);
      const outStatus = blockStatus(p, req.outputGpa, outSize);
      if (outStatus !== HvStatus.SUCCESS) return fail(outStatus, c.repStart);
      // Input and output must not overlap (tlfs.md 4.7): a continued call would re-read output.
      if (inSize > 0 && outSize > 0 && req.inputGpa < req.outputGpa + BigInt(outSize) && req.outputGpa < req.inputGpa + BigInt(inSize)) {
        return fail(HvStatus.INVALID_ALIGNMENT, c.repStart);
      }
      // Copy the whole input before any output is written: the guest cannot change it under us.
      if (inSize > 0) input.set(p.memory.view(Number(req.inputGpa), inSize));
    }

    // Whole qwords, so fast output can be handed back register by register.
    const output = blocks.output.subarray(0, roundUp(outSize, 8));
    output.fill(0);
    const ctx = new CallContext(p, vp, c, def, input, blocks.in, output, blocks.out);

    if (!def.rep) {
      const status = def.run ? def.run(ctx) : HvStatus.SUCCESS;
      if (status === HvStatus.SUCCESS && outSize > 0) this.writeOutput(p, req, c, inSize, output, 0, outSize);
      return fail(status);
    }

    const header = def.run ? def.run(ctx) : HvStatus.SUCCESS;
    if (header !== HvStatus.SUCCESS) return fail(header, c.repStart);
    const quantum = p.config.repQuantum;
    let i = c.repStart;
    let status: number = HvStatus.SUCCESS;
    let done = 0;
    while (i < c.repCount && done < quantum) {
      status = def.element ? def.element(ctx, i) : HvStatus.SUCCESS;
      if (status !== HvStatus.SUCCESS) break;
      i++;
      done++;
    }
    // Output of the elements processed in this invocation, and nothing else.
    if (i > c.repStart && def.repOutput) this.writeOutput(p, req, c, inSize, output, ctx.repOut(c.repStart), ctx.repOut(i));
    if (status !== HvStatus.SUCCESS || i === c.repCount) return fail(status, i);
    if (p.config.repContinuation === 'partial') return fail(HvStatus.SUCCESS, i);
    const restart = (req.control & ~(0xfffn << 48n)) | (BigInt(i) << 48n);
    return { result: encodeResult(HvStatus.SUCCESS, i), restartControl: restart };
  }

  private writeOutput(p: Partition, req: HypercallRequest, c: Control, inSize: number, output: Uint8Array, from: number, to: number): void {
    if (!c.fast) {
      p.memory.write(Number(req.outputGpa) + from, output.subarray(from, to));
      return;
    }
    // Fast output fills the register pairs after the last input pair (OpenVMM x86.rs/aarch64.rs).
    const base = roundUp(inSize, 16) / 8;
    const dv = new DataView(output.buffer);
    for (let q = Math.floor(from / 8); q * 8 < to; q++) req.fastRegisters[base + q] = dv.getBigUint64(q * 8, true);
  }
}
