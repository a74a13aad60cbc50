// Linux's requestor (vmbus.md §8.6): request ids 1..size stand for the caller's context, so no
// guest pointer reaches the wire; a completion is honoured only for an id that is outstanding.

export class Requestor<T> {
  private readonly slots: (T | undefined)[];
  private readonly used: boolean[];
  private readonly free: number[] = [];

  constructor(readonly size: number) {
    this.slots = new Array<T | undefined>(size);
    this.used = new Array<boolean>(size).fill(false);
    for (let i = size - 1; i >= 0; i--) this.free.push(i);
  }

  get outstanding(): number {
    return this.size - this.free.length;
  }

  /** A fresh id for `context`, or undefined when all are in use. */
  allocate(context: T): bigint | undefined {
    const id = this.allocateOf(context);
    return id === 0 ? undefined : BigInt(id);
  }

  /** allocate() as a number: the id (1..size), or 0 when all are in use (no BigInt made). */
  allocateOf(context: T): number {
    const i = this.free.pop();
    if (i === undefined) return 0;
    this.slots[i] = context;
    this.used[i] = true;
    return i + 1;
  }

  /**
   * The context of a completed id, which is freed; undefined for 0 (Hyper-V's "unsolicited"),
   * an id out of range, or one not outstanding (vmbus_request_addr).
   */
  take(id: bigint): T | undefined {
    if (id < 1n || id > BigInt(this.size)) return undefined;
    return this.takeOf(Number(id), 0);
  }

  /** take() of the id whose low and high 32 bits these are (no BigInt made). */
  takeOf(idLow: number, idHigh: number): T | undefined {
    if (idHigh !== 0 || !(idLow >= 1 && idLow <= this.size)) return undefined;
    const i = idLow - 1;
    if (!this.used[i]) return undefined;
    const context = this.slots[i];
    this.slots[i] = undefined;
    this.used[i] = false;
    this.free.push(i);
    return context;
  }
}
