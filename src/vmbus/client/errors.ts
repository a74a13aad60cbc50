// The errors a guest's VMBus calls return, named by the errno Linux returns in the same case.

const ERRNO = {
  EIO: 5,
  EAGAIN: 11,
  ENOMEM: 12,
  ENODEV: 19,
  EINVAL: 22,
  EDOM: 33,
  EPROTO: 71,
  ENOBUFS: 105,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EDQUOT: 122,
} as const;

export type Errno = keyof typeof ERRNO;

export class VmbusError extends Error {
  override readonly name = 'VmbusError';

  constructor(
    readonly code: Errno,
    message: string,
  ) {
    super(`${message} (${code})`);
  }

  /** The negative errno Linux would return (-19 for ENODEV). */
  get errno(): number {
    return -ERRNO[this.code];
  }
}
