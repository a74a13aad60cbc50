// Typed errors of the memory layer: every one names the guest physical address at fault.

const hex = (n: number): string => '0x' + n.toString(16);

/** An access reached outside guest RAM. */
export class GpaOutOfRangeError extends Error {
  override readonly name = 'GpaOutOfRangeError';
  constructor(
    readonly gpa: number,
    readonly length: number,
    readonly ramSize: number,
  ) {
    super(`GPA ${hex(gpa)}+${hex(length)} is outside guest RAM (size ${hex(ramSize)})`);
  }
}

/** A PFN list or range that cannot describe the requested bytes. */
export class PfnListError extends Error {
  override readonly name = 'PfnListError';
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}
