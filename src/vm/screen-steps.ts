// The script's screen step: `screenshot FILE.png` lets the guest's last drawing reach the host
// (hyperv_fb's throttled update) and writes the host's copy of the screen as a PNG.
import type { ScriptHost, Step, StepContext, StepResult } from './script.js';
import { encodePng, SCREEN_SETTLE_NS, videoHost } from './screenshot.js';

export type ScreenStep = Extract<Step, { op: 'screenshot' }>;

/** Parses `screenshot FILE`; returns the step or why not. */
export function parseScreenStep(plain: readonly string[], flags: ReadonlySet<string>, line: number): ScreenStep | string {
  if (flags.size > 0) return `screenshot: unknown option ${[...flags][0]}`;
  if (plain.length !== 1) return 'screenshot: expected FILE (a PNG file to write)';
  return { op: 'screenshot', line, file: plain[0]! };
}

export const screenStepTitle = (step: ScreenStep): string => `screenshot ${step.file}`;

/** Runs the step: settles the display, renders, writes the PNG through the script's host. */
export async function screenStep(c: StepContext, step: ScreenStep, host: ScriptHost | undefined): Promise<StepResult> {
  const what = screenStepTitle(step);
  const done = (ok: boolean, values: Record<string, unknown>, text: string): StepResult => ({ line: step.line, step: 'screenshot', status: ok ? 'ok' : 'failed', values, text: `${what}: ${text}` });
  const video = videoHost(c.m.devices);
  if (!video) return done(false, { outcome: 'no-device' }, 'the VM has no video device');
  await c.run(SCREEN_SETTLE_NS / 1e9);
  const frame = video.render();
  if (!frame) return done(false, { outcome: 'no-mode' }, 'the guest has not set a video mode');
  if (!host?.writeFile) return done(false, { outcome: 'no-files' }, 'this run cannot write files');
  try {
    host.writeFile(step.file, encodePng(frame));
  } catch (e) {
    return done(false, { outcome: 'write-failed' }, `cannot write ${step.file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  return done(true, { outcome: 'written', width: frame.width, height: frame.height, updates: video.updates }, `${frame.width}x${frame.height} written (${video.updates} screen updates so far)`);
}
