// How Linux sizes a channel's rings (include/linux/hyperv.h VMBUS_RING_SIZE, vmbus.md §6.6).

/**
 * VMBUS_RING_SIZE(payload) = PAGE_ALIGN(sizeof(struct hv_ring_buffer) + payload): the guest's
 * ring header is one whole guest page (reserved2[PAGE_SIZE - 68]), so on 16 and 64 KiB pages a
 * ring is larger than on 4 KiB pages for the same payload.
 */
export const vmbusRingSize = (payload: number, pageSize: number): number => Math.ceil((payload + pageSize) / pageSize) * pageSize;
