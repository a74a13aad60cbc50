// VMBus constants (vmbus.md §1.1, §2.2, §2.3, §3.1, §8.2). Linux: include/linux/hyperv.h,
// drivers/hv/hyperv_vmbus.h.

/** SINT of VMBus messages and channel events. */
export const VMBUS_MESSAGE_SINT = 2;
export const VMBUS_MESSAGE_CONNECTION_ID = 1;
/** INITIATE_CONTACT for version 5.0 and later goes to this connection. */
export const VMBUS_MESSAGE_CONNECTION_ID_4 = 4;
export const VMBUS_MESSAGE_PORT_ID = 1;
export const VMBUS_EVENT_CONNECTION_ID = 2;
export const VMBUS_EVENT_PORT_ID = 2;
export const VMBUS_MONITOR_CONNECTION_ID = 3;
export const VMBUS_MONITOR_PORT_ID = 3;
/** The SynIC message type of every VMBus channel message. */
export const VMBUS_MESSAGE_TYPE = 1;
export const MAX_SIZE_CHANNEL_MESSAGE = 240;
/** Linux maps relids below this; larger ones are refused. */
export const MAX_CHANNEL_RELIDS = 2048;
/** Linux's CPU for control messages (VMBUS_CONNECT_CPU). */
export const VMBUS_CONNECT_CPU = 0;

/** A protocol version: (major << 16) | minor. */
export const VmbusVersion = {
  WS2008: 0x0000000d,
  WIN7: 0x00010001,
  WIN8: 0x00020004,
  WIN8_1: 0x00030000,
  WIN10: 0x00040000,
  WIN10_V4_1: 0x00040001,
  WIN10_V5: 0x00050000,
  WIN10_V5_1: 0x00050001,
  WIN10_V5_2: 0x00050002,
  WIN10_V5_3: 0x00050003,
  WIN10_V6_0: 0x00060000,
} as const;

/** Linux's try order, newest first (drivers/hv/connection.c vmbus_versions[]). */
export const LINUX_VERSION_ORDER: readonly number[] = [
  VmbusVersion.WIN10_V6_0,
  VmbusVersion.WIN10_V5_3,
  VmbusVersion.WIN10_V5_2,
  VmbusVersion.WIN10_V5_1,
  VmbusVersion.WIN10_V5,
  VmbusVersion.WIN10_V4_1,
  VmbusVersion.WIN10,
  VmbusVersion.WIN8_1,
  VmbusVersion.WIN8,
];

export const versionString = (v: number): string => `${v >>> 16}.${v & 0xffff}`;
export const makeVersion = (major: number, minor: number): number => ((major << 16) | minor) >>> 0;

/** enum vmbus_channel_message_type. */
export const ChannelMessageType = {
  INVALID: 0,
  OFFERCHANNEL: 1,
  RESCIND_CHANNELOFFER: 2,
  REQUESTOFFERS: 3,
  ALLOFFERS_DELIVERED: 4,
  OPENCHANNEL: 5,
  OPENCHANNEL_RESULT: 6,
  CLOSECHANNEL: 7,
  GPADL_HEADER: 8,
  GPADL_BODY: 9,
  GPADL_CREATED: 10,
  GPADL_TEARDOWN: 11,
  GPADL_TORNDOWN: 12,
  RELID_RELEASED: 13,
  INITIATE_CONTACT: 14,
  VERSION_RESPONSE: 15,
  UNLOAD: 16,
  UNLOAD_RESPONSE: 17,
  MSG_18: 18,
  MSG_19: 19,
  MSG_20: 20,
  TL_CONNECT_REQUEST: 21,
  MODIFYCHANNEL: 22,
  TL_CONNECT_RESULT: 23,
  MODIFYCHANNEL_RESPONSE: 24,
  COUNT: 25,
} as const;
export type ChannelMessageTypeName = Exclude<keyof typeof ChannelMessageType, 'COUNT'>;

/** Offer chn_flags (VMBUS_CHANNEL_*). */
export const ChannelFlags = {
  ENUMERATE_DEVICE_INTERFACE: 0x0001,
  /** Linux 6.1 calls it SERVER_SUPPORTS_TRANSFER_PAGES; v6.0 confidential VMBus reuses it. */
  CONFIDENTIAL_RING_BUFFER: 0x0002,
  /** Linux 6.1 calls it SERVER_SUPPORTS_GPADLS. */
  CONFIDENTIAL_EXTERNAL_MEMORY: 0x0004,
  NAMED_PIPE_MODE: 0x0010,
  LOOPBACK_OFFER: 0x0100,
  PARENT_OFFER: 0x0200,
  REQUEST_MONITORED_NOTIFICATION: 0x0400,
  TLNPI_PROVIDER_OFFER: 0x2000,
} as const;

export const VMBUS_PIPE_TYPE_BYTE = 0;
export const VMBUS_PIPE_TYPE_MESSAGE = 4;
export const MAX_USER_DEFINED_BYTES = 120;
export const MAX_PIPE_USER_DEFINED_BYTES = 116;

/** VERSION_RESPONSE connection_state (OpenVMM). */
export const ConnectionState = { SUCCESSFUL: 0, FAILED_LOW_RESOURCES: 1, FAILED_UNKNOWN_FAILURE: 2 } as const;

/** v6.0 INITIATE_CONTACT feature_flags (vmbus.md §3.5). */
export const VmbusFeature = {
  GUEST_SPECIFIED_SIGNAL_PARAMETERS: 0x01,
  CHANNEL_INTERRUPT_REDIRECTION: 0x02,
  MODIFY_CONNECTION: 0x04,
  CLIENT_ID: 0x08,
  CONFIDENTIAL_CHANNELS: 0x10,
  PAUSE_RESUME: 0x20,
  SERVER_SPECIFIED_MONITOR_PAGES: 0x40,
  GPA_PINNING: 0x80,
} as const;

/** enum vmbus_packet_type. */
export const PacketType = {
  INVALID: 0x0,
  SYNCH: 0x1,
  ADD_XFER_PAGESET: 0x2,
  RM_XFER_PAGESET: 0x3,
  ESTABLISH_GPADL: 0x4,
  TEARDOWN_GPADL: 0x5,
  DATA_INBAND: 0x6,
  DATA_USING_XFER_PAGES: 0x7,
  DATA_USING_GPADL: 0x8,
  DATA_USING_GPA_DIRECT: 0x9,
  CANCEL_REQUEST: 0xa,
  COMP: 0xb,
  DATA_USING_ADDITIONAL_PKT: 0xc,
  ADDITIONAL_DATA: 0xd,
} as const;

export const VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED = 0x1;
export const VMBUS_PKT_TRAILER = 8;
/** Linux's default receive limit per channel, descriptor included (max_pkt_size). */
export const VMBUS_DEFAULT_MAX_PKT_SIZE = 4096;
export const MAX_PAGE_BUFFER_COUNT = 32;
export const MAX_MULTIPAGE_BUFFER_COUNT = 32;

/** The first GPADL handle Linux hands out (next_gpadl_handle). */
export const FIRST_GPADL_HANDLE = 0xe1e10;
/** PFNs in a GPADL_HEADER (after its one range header) and in each GPADL_BODY (vmbus.md §2.23). */
export const GPADL_HEADER_PFNS = 26;
export const GPADL_BODY_PFNS = 28;
