// `hvkit disk create|info|check`: making, describing and checking the images --disk attaches.
// The work is src/vm/disk-image.ts; this parses options and prints, as qemu-img does where it can
// (info's first lines, check's verdict) so that scripts written for one read the other.
import { InvalidArgumentError, type Command } from 'commander';
import type { VhdxType } from '../devices/storage/vhdx/vhdx.js';
import { checkImage, createImage, formatOf, imageInfo, infoLines, qemuSize, type ImageFormat } from '../vm/disk-image.js';
import { RunFailure } from './errors.js';
import type { Io, Status } from './main.js';
import { parseSize } from './parse.js';

function oneOf<T extends string>(values: readonly T[]): (v: string) => T {
  return (v) => {
    if (!(values as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${values.join(', ')}`);
    return v as T;
  };
}

function sectorSize(v: string): 512 | 4096 {
  if (v !== '512' && v !== '4096') throw new InvalidArgumentError('expected 512 or 4096');
  return Number(v) as 512 | 4096;
}

interface CreateOptions {
  format?: ImageFormat;
  type?: VhdxType;
  blockSize?: number;
  sectorSize?: 512 | 4096;
  physicalSectorSize?: 512 | 4096;
  parent?: string;
}

export function registerDisk(program: Command, io: Io, status: Status): void {
  const disk = program.command('disk').description('make, describe and check disk images (raw, VHDX)');
  disk.hook('preSubcommand', (_, sub) => void (status.command = `disk ${sub.name()}`));

  disk
    .command('create')
    .description('make a new image: raw, or VHDX dynamic (the default), fixed, or differencing (--parent)')
    .argument('<path>', 'the new image; a .vhdx name makes a VHDX unless --format says otherwise')
    .argument('[size]', 'virtual size: 64M, 10G, 2T (a differencing disk takes its parent\'s)', parseSize)
    .option('--format <format>', 'raw or vhdx (default: from the name)', oneOf(['raw', 'vhdx'] as const))
    .option('--type <type>', 'VHDX: dynamic, fixed, or differencing', oneOf(['dynamic', 'fixed', 'differencing'] as const))
    .option('--block-size <size>', 'VHDX: 1M to 256M, a power of two (default 32M, 2M for differencing: Hyper-V\'s)', parseSize)
    .option('--sector-size <bytes>', 'VHDX: logical sector size, 512 or 4096 (default 512)', sectorSize)
    .option('--physical-sector-size <bytes>', 'VHDX: 512 or 4096 (default 4096)', sectorSize)
    .option('--parent <path>', 'VHDX: the parent of a differencing disk (recorded relative to the new image, and absolute)')
    .action((path: string, size: number | undefined, o: CreateOptions) => {
      const format = o.format ?? (o.parent ? 'vhdx' : formatOf(path));
      createImage(path, {
        format,
        ...(size !== undefined ? { size } : {}),
        ...(o.type ? { type: o.type } : {}),
        ...(o.blockSize !== undefined ? { blockSize: o.blockSize } : {}),
        ...(o.sectorSize ? { logicalSectorSize: o.sectorSize } : {}),
        ...(o.physicalSectorSize ? { physicalSectorSize: o.physicalSectorSize } : {}),
        ...(o.parent ? { parent: o.parent } : {}),
      });
      const info = imageInfo(path);
      const kind = info.vhdx ? `VHDX ${info.vhdx.type}, ${qemuSize(info.vhdx.blockSize)} blocks` : 'raw';
      io.out(`created ${path}: ${kind}, ${qemuSize(info.virtualSize)} (${info.virtualSize} bytes)`);
    });

  disk
    .command('info')
    .description("what an image is: qemu-img info's lines (format, virtual size, disk size, cluster size), then the VHDX type, blocks, parent")
    .argument('<path>', 'the image')
    .option('--json', 'print a JSON object', false)
    .action((path: string, o: { json: boolean }) => {
      const info = imageInfo(path);
      if (o.json) io.out(JSON.stringify(info, null, 2));
      else for (const line of infoLines(info)) io.out(line);
    });

  disk
    .command('check')
    .description('check an image without changing it: its structures, a dirty log, overlapping blocks, the parent; exit 1 when something is wrong')
    .argument('<path>', 'the image')
    .option('--json', 'print a JSON object', false)
    .action((path: string, o: { json: boolean }) => {
      const r = checkImage(path);
      if (o.json) io.out(JSON.stringify(r, null, 2));
      else if (r.errors.length === 0) io.out('No errors were found on the image.');
      else {
        for (const e of r.errors) io.out(`ERROR ${e}`);
        io.out('');
        io.out(`${r.errors.length} ${r.errors.length === 1 ? 'error was' : 'errors were'} found on the image.`);
      }
      if (r.errors.length) throw new RunFailure(`${path}: ${r.errors.length} ${r.errors.length === 1 ? 'error' : 'errors'} found`);
    });
}
