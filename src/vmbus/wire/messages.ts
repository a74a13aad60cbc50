// VMBus channel messages (vmbus.md §2): one declaration per message, a table of what each type
// is, and a decoder that names the field at fault. Linux: include/linux/hyperv.h; the
// OpenVMM-only forms follow vm/devices/vmbus/vmbus_core/src/protocol.rs.
import { bits, bytes, flatten, flex, guid, struct, u16, u32, u64, u8, WireError, type FieldSpec, type Struct, type StructValue } from '../../tlfs/struct.js';
import { ChannelMessageType, MAX_SIZE_CHANNEL_MESSAGE, MAX_USER_DEFINED_BYTES, VmbusVersion } from './constants.js';

export const MessageHeader = struct('vmbus_channel_message_header', { msgtype: u32, padding: u32 });

/** `struct vmbus_channel_offer`: the device part of an offer. `u` is the user-defined area. */
export const ChannelOffer = struct('vmbus_channel_offer', {
  if_type: guid,
  if_instance: guid,
  reserved1: u64,
  reserved2: u64,
  chn_flags: u16,
  mmio_megabytes: u16,
  u: bytes(MAX_USER_DEFINED_BYTES),
  sub_channel_index: u16,
  reserved3: u16,
});

/** The pipe-mode view of the user-defined area (NAMED_PIPE_MODE). */
export const PipeUserDefined = struct('vmbus_channel_offer.u.pipe', { pipe_mode: u32, user_def: bytes(116) });

export const OfferChannel = struct('vmbus_channel_offer_channel', {
  header: MessageHeader,
  offer: ChannelOffer,
  child_relid: u32,
  monitorid: u8,
  _monitor: bits('monitor_allocated', 'u8', { monitor_allocated: 1, reserved: 7 }),
  _dedicated: bits('is_dedicated_interrupt', 'u16', { is_dedicated_interrupt: 1, reserved1: 15 }),
  connection_id: u32,
});

export const RescindOffer = struct('vmbus_channel_rescind_offer', { header: MessageHeader, child_relid: u32 });

export const OpenChannel = struct('vmbus_channel_open_channel', {
  header: MessageHeader,
  child_relid: u32,
  openid: u32,
  ringbuffer_gpadlhandle: u32,
  target_vp: u32,
  downstream_ringbuffer_pageoffset: u32,
  userdata: bytes(MAX_USER_DEFINED_BYTES),
});

export const OpenResult = struct('vmbus_channel_open_result', { header: MessageHeader, child_relid: u32, openid: u32, status: u32 });

export const CloseChannel = struct('vmbus_channel_close_channel', { header: MessageHeader, child_relid: u32 });

/** GPADL_HEADER's fixed part; `range` is the start of the packed range data. */
export const GpadlHeader = struct('vmbus_channel_gpadl_header', {
  header: MessageHeader,
  child_relid: u32,
  gpadl: u32,
  range_buflen: u16,
  rangecount: u16,
  range: flex(u8),
});

/** GPADL_BODY's fixed part; `pfn` continues the range data. */
export const GpadlBody = struct('vmbus_channel_gpadl_body', { header: MessageHeader, msgnumber: u32, gpadl: u32, pfn: flex(u64) });

export const GpadlCreated = struct('vmbus_channel_gpadl_created', { header: MessageHeader, child_relid: u32, gpadl: u32, creation_status: u32 });
export const GpadlTeardown = struct('vmbus_channel_gpadl_teardown', { header: MessageHeader, child_relid: u32, gpadl: u32 });
export const GpadlTorndown = struct('vmbus_channel_gpadl_torndown', { header: MessageHeader, gpadl: u32 });
export const RelidReleased = struct('vmbus_channel_relid_released', { header: MessageHeader, child_relid: u32 });

/**
 * INITIATE_CONTACT as versions 5.0 and later lay it out: `msg_sint`/`msg_vtl` and, from 6.0,
 * `feature_flags` replace the interrupt page (vmbus.md §2.15). Linux 6.1 names `msg_vtl` and the
 * reserved u16 `padding1`, and `feature_flags` `padding2`.
 */
export const InitiateContact = struct('vmbus_channel_initiate_contact', {
  header: MessageHeader,
  vmbus_version_requested: u32,
  target_vcpu: u32,
  msg_sint: u8,
  msg_vtl: u8,
  reserved: u16,
  feature_flags: u32,
  monitor_page1: u64,
  monitor_page2: u64,
});

/** INITIATE_CONTACT before 5.0: the GPA of the legacy interrupt page instead. */
export const InitiateContactLegacy = struct('vmbus_channel_initiate_contact', {
  header: MessageHeader,
  vmbus_version_requested: u32,
  target_vcpu: u32,
  interrupt_page: u64,
  monitor_page1: u64,
  monitor_page2: u64,
});

export const VersionResponse = struct('vmbus_channel_version_response', {
  header: MessageHeader,
  version_supported: u8,
  connection_state: u8,
  padding: u16,
  msg_conn_id: u32,
});

/** OpenVMM's answer to an accepted 6.0 request: the feature flags it grants. */
export const VersionResponse2 = struct('vmbus_version_response2', { response: VersionResponse, supported_features: u32 });

export const TlConnectRequest = struct('vmbus_channel_tl_connect_request', { header: MessageHeader, guest_endpoint_id: guid, host_service_id: guid });
/** OpenVMM's failure answer to TL_CONNECT_REQUEST (from 4.1); Linux has no handler. */
export const TlConnectResult = struct('vmbus_tl_connect_result', { header: MessageHeader, endpoint_id: guid, service_id: guid, status: u32 });

export const ModifyChannel = struct('vmbus_channel_modifychannel', { header: MessageHeader, child_relid: u32, target_vp: u32 });
export const ModifyChannelResponse = struct('vmbus_channel_modifychannel_response', { header: MessageHeader, child_relid: u32, status: u32 });

/** Legacy messages Linux declares and never sends. */
export const QueryVmbusVersion = struct('vmbus_channel_query_vmbus_version', { header: MessageHeader, version: u32 });
export const VersionSupported = struct('vmbus_channel_version_supported', { header: MessageHeader, version_supported: u8 });

// ---------------------------------------------------------------------------------------------

type M = typeof ChannelMessageType;

/** Every channel message hvkit knows, by type: who sends it and its fixed layout. */
export const MESSAGES = {
  [ChannelMessageType.OFFERCHANNEL]: { name: 'OFFERCHANNEL', dir: 'host', struct: OfferChannel },
  [ChannelMessageType.RESCIND_CHANNELOFFER]: { name: 'RESCIND_CHANNELOFFER', dir: 'host', struct: RescindOffer },
  [ChannelMessageType.REQUESTOFFERS]: { name: 'REQUESTOFFERS', dir: 'guest', struct: MessageHeader },
  [ChannelMessageType.ALLOFFERS_DELIVERED]: { name: 'ALLOFFERS_DELIVERED', dir: 'host', struct: MessageHeader },
  [ChannelMessageType.OPENCHANNEL]: { name: 'OPENCHANNEL', dir: 'guest', struct: OpenChannel },
  [ChannelMessageType.OPENCHANNEL_RESULT]: { name: 'OPENCHANNEL_RESULT', dir: 'host', struct: OpenResult },
  [ChannelMessageType.CLOSECHANNEL]: { name: 'CLOSECHANNEL', dir: 'guest', struct: CloseChannel },
  [ChannelMessageType.GPADL_HEADER]: { name: 'GPADL_HEADER', dir: 'guest', struct: GpadlHeader },
  [ChannelMessageType.GPADL_BODY]: { name: 'GPADL_BODY', dir: 'guest', struct: GpadlBody },
  [ChannelMessageType.GPADL_CREATED]: { name: 'GPADL_CREATED', dir: 'host', struct: GpadlCreated },
  [ChannelMessageType.GPADL_TEARDOWN]: { name: 'GPADL_TEARDOWN', dir: 'guest', struct: GpadlTeardown },
  [ChannelMessageType.GPADL_TORNDOWN]: { name: 'GPADL_TORNDOWN', dir: 'host', struct: GpadlTorndown },
  [ChannelMessageType.RELID_RELEASED]: { name: 'RELID_RELEASED', dir: 'guest', struct: RelidReleased },
  [ChannelMessageType.INITIATE_CONTACT]: { name: 'INITIATE_CONTACT', dir: 'guest', struct: InitiateContact },
  [ChannelMessageType.VERSION_RESPONSE]: { name: 'VERSION_RESPONSE', dir: 'host', struct: VersionResponse },
  [ChannelMessageType.UNLOAD]: { name: 'UNLOAD', dir: 'guest', struct: MessageHeader },
  [ChannelMessageType.UNLOAD_RESPONSE]: { name: 'UNLOAD_RESPONSE', dir: 'host', struct: MessageHeader },
  [ChannelMessageType.TL_CONNECT_REQUEST]: { name: 'TL_CONNECT_REQUEST', dir: 'guest', struct: TlConnectRequest },
  [ChannelMessageType.MODIFYCHANNEL]: { name: 'MODIFYCHANNEL', dir: 'guest', struct: ModifyChannel },
  [ChannelMessageType.TL_CONNECT_RESULT]: { name: 'TL_CONNECT_RESULT', dir: 'host', struct: TlConnectResult },
  [ChannelMessageType.MODIFYCHANNEL_RESPONSE]: { name: 'MODIFYCHANNEL_RESPONSE', dir: 'host', struct: ModifyChannelResponse },
} as const;

type Table = typeof MESSAGES;
export type KnownMessageType = keyof Table & number;
type ValueFor<T extends KnownMessageType> = Table[T]['struct'] extends Struct<infer F> ? StructValue<F> : never;
/** What a caller supplies to encode a message: its fields after the header (nothing for header-only messages). */
type BodyFor<T extends KnownMessageType> = Table[T]['struct'] extends typeof MessageHeader ? Record<string, never> : Omit<ValueFor<T>, 'header'> & { header?: unknown };

/** A decoded channel message: its type, name, fixed fields, and any bytes after the fixed part. */
export type ChannelMessage = {
  [T in KnownMessageType]: { type: T; name: Table[T]['name']; value: ValueFor<T>; extra: Uint8Array };
}[KnownMessageType];

/** A channel message that does not parse; `field` names what is wrong. */
export class ChannelMessageError extends WireError {
  constructor(field: string, reason: string) {
    super('channel message', field, reason);
  }
}

/** The first field of `s` that does not fit in `length` bytes. */
function missingField(s: Struct<FieldSpec>, length: number): string {
  // The first leaf cut short, by the name Linux gives it (flatten names anonymous members' leaves).
  const fields = flatten(s);
  const isLeaf = (name: string) => !fields.some((g) => g.name.startsWith(`${name}.`) || g.name.startsWith(`${name}[`));
  const f = fields.find((g) => g.offset + g.size > length && isLeaf(g.name));
  return f ? `${s.name}.${f.name}` : s.name;
}

/**
 * Decodes one channel message (a SynIC message payload). Throws ChannelMessageError for an
 * empty or oversized payload, an unknown type, or too few bytes for the type's fixed part.
 * INITIATE_CONTACT is decoded in the form its requested version uses.
 */
export function decodeChannelMessage(payload: Uint8Array): ChannelMessage {
  if (payload.length > MAX_SIZE_CHANNEL_MESSAGE) throw new ChannelMessageError('payload_size', `${payload.length} bytes exceed the ${MAX_SIZE_CHANNEL_MESSAGE}-byte message`);
  if (payload.length < MessageHeader.size) throw new ChannelMessageError('header', `needs ${MessageHeader.size} bytes, have ${payload.length}`);
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const type = dv.getUint32(MessageHeader.offsets.msgtype, true);
  const spec = (MESSAGES as Record<number, Table[KnownMessageType]>)[type];
  if (!spec) throw new ChannelMessageError('header.msgtype', `${type} is not a channel message type hvkit handles`);
  let s: Struct<FieldSpec> = spec.struct;
  if (type === ChannelMessageType.INITIATE_CONTACT && payload.length >= InitiateContact.offsets.target_vcpu) {
    const v = dv.getUint32(InitiateContact.offsets.vmbus_version_requested, true);
    if (v < VmbusVersion.WIN10_V5) s = InitiateContactLegacy;
  }
  if (payload.length < s.size) throw new ChannelMessageError(missingField(s, payload.length), `${spec.name} needs ${s.size} bytes, have ${payload.length}`);
  return { type, name: spec.name, value: s.decode(payload), extra: payload.slice(s.size) } as ChannelMessage;
}

/** Encodes a message of `type` from its fixed fields (the header's msgtype is filled in) plus trailing bytes. */
export function encodeChannelMessage<T extends KnownMessageType>(type: T, value: BodyFor<T>, extra?: Uint8Array): Uint8Array {
  let s = MESSAGES[type].struct as Struct<FieldSpec>;
  if (type === ChannelMessageType.INITIATE_CONTACT && 'interrupt_page' in value) s = InitiateContactLegacy;
  const fields = s === MessageHeader ? { msgtype: type, padding: 0 } : { ...value, header: { msgtype: type, padding: 0 } };
  const out = new Uint8Array(s.size + (extra?.length ?? 0));
  s.encode(fields as never, out);
  if (extra) out.set(extra, s.size);
  if (out.length > MAX_SIZE_CHANNEL_MESSAGE) throw new ChannelMessageError('payload_size', `${out.length} bytes exceed the ${MAX_SIZE_CHANNEL_MESSAGE}-byte message`);
  return out;
}

export const messageName = (type: number): string => (MESSAGES as Record<number, { name: string }>)[type]?.name ?? `CHANNELMSG_${type}`;

export type { M as ChannelMessageTypes };
