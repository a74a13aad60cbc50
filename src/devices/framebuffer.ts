// A frame buffer as a driver registers it with the kernel (Linux's struct fb_info, reduced):
// its mode, the memory the console draws into, and the damage call that tells the driver what
// changed (fb_ops.fb_damage_area in the deferred-I/O helpers). The kernel's framebuffer console
// (src/guest/fbcon.ts) draws on it; the driver decides how changes reach the device.

export interface FramebufferMode {
  /** var.xres, var.yres. */
  readonly width: number;
  readonly height: number;
  /** fix.line_length, bytes; it may be more than width * 4. */
  readonly stride: number;
  /** var.bits_per_pixel; hvkit's console draws 32 (XRGB8888, little-endian). */
  readonly bpp: number;
}

export interface Framebuffer {
  /** fix.id: the driver's name ("hyperv_fb"). */
  readonly id: string;
  readonly mode: FramebufferMode;
  /** screen_base: the pixels the console writes, `mode.stride` bytes a line. */
  readonly screen: Uint8Array;
  /** Marks a rectangle changed (fb_damage_area); the driver sends it on its own schedule. */
  damage(x: number, y: number, width: number, height: number): void;
  /** Called after the mode changed (fb_set_par), so the console lays itself out again. */
  onModeChange(listener: () => void): void;
  /**
   * fbset: asks for a new visible size (fb_check_var then fb_set_par). Returns undefined on
   * success, or the errno the driver refused it with.
   */
  setMode(width: number, height: number): 'EINVAL' | 'ENODEV' | undefined;
}
