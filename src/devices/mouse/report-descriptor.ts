// The report descriptor hvkit's synthetic mouse offers, written from the HID 1.11 specification
// (§6.2.2 items) and the HID Usage Tables (Generic Desktop page 0x01: Mouse 0x02, Pointer 0x01,
// X 0x30, Y 0x31, Wheel 0x38; Button page 0x09): an absolute pointer with three buttons and a
// wheel, X and Y from 0 to 32767 as Hyper-V's absolute mouse reports them. One input report,
// no report id: buttons (3 bits + 5 padding), X (u16), Y (u16), wheel (s8). Byte 14 is Usage
// Maximum (0x29), the item hid-hyperv's "SA-167" workaround expects there.
export const MOUSE_REPORT_DESCRIPTOR = new Uint8Array([
  0x05, 0x01, // Usage Page (Generic Desktop)
  0x09, 0x02, // Usage (Mouse)
  0xa1, 0x01, // Collection (Application)
  0x09, 0x01, //   Usage (Pointer)
  0xa1, 0x00, //   Collection (Physical)
  0x05, 0x09, //     Usage Page (Button)
  0x19, 0x01, //     Usage Minimum (1)
  0x29, 0x03, //     Usage Maximum (3)
  0x15, 0x00, //     Logical Minimum (0)
  0x25, 0x01, //     Logical Maximum (1)
  0x95, 0x03, //     Report Count (3)
  0x75, 0x01, //     Report Size (1)
  0x81, 0x02, //     Input (Data, Variable, Absolute)
  0x95, 0x01, //     Report Count (1)
  0x75, 0x05, //     Report Size (5)
  0x81, 0x03, //     Input (Constant, Variable, Absolute): padding
  0x05, 0x01, //     Usage Page (Generic Desktop)
  0x09, 0x30, //     Usage (X)
  0x09, 0x31, //     Usage (Y)
  0x15, 0x00, //     Logical Minimum (0)
  0x26, 0xff, 0x7f, // Logical Maximum (32767)
  0x75, 0x10, //     Report Size (16)
  0x95, 0x02, //     Report Count (2)
  0x81, 0x02, //     Input (Data, Variable, Absolute)
  0x09, 0x38, //     Usage (Wheel)
  0x15, 0x81, //     Logical Minimum (-127)
  0x25, 0x7f, //     Logical Maximum (127)
  0x75, 0x08, //     Report Size (8)
  0x95, 0x01, //     Report Count (1)
  0x81, 0x06, //     Input (Data, Variable, Relative)
  0xc0, //         End Collection
  0xc0, //       End Collection
]);

/** The largest absolute coordinate. */
export const MOUSE_ABS_MAX = 32767;

/** Mouse buttons, as bits of the report's first byte. */
export const MOUSE_BUTTONS = { left: 1, right: 2, middle: 4 } as const;
export type MouseButton = keyof typeof MOUSE_BUTTONS;

/** One input report for the descriptor above. */
export function mouseReport(buttons: number, x: number, y: number, wheel = 0): Uint8Array {
  const r = new Uint8Array(6);
  const dv = new DataView(r.buffer);
  r[0] = buttons & 7;
  dv.setUint16(1, x, true);
  dv.setUint16(3, y, true);
  dv.setInt8(5, wheel);
  return r;
}

/**
 * What the host reports in hv_input_dev_info: Microsoft's USB vendor id, and the product and
 * version Linux guests on Hyper-V show for the device ("hid-generic 0006:045E:0621.0001: …
 * HID v0.01 Mouse"). UNVERIFIED: read from guests' logs, not from a document.
 */
export const MOUSE_DEVICE_ID = { vendor: 0x045e, product: 0x0621, version: 0x0001 } as const;
