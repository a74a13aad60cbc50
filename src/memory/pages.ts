// The Hyper-V page is 4 KiB whatever the guest's own page size (tlfs.md §0, §7.5):
// every GPN/PFN handed to the hypervisor is GPA >> 12. arm64 guests may use 16 or 64 KiB pages.

export const HV_HYP_PAGE_SHIFT = 12;
export const HV_HYP_PAGE_SIZE = 4096;
export const HV_HYP_PAGE_MASK = ~(HV_HYP_PAGE_SIZE - 1);

export type GuestPageSize = 4096 | 16384 | 65536;
export const GUEST_PAGE_SIZES: readonly GuestPageSize[] = [4096, 16384, 65536];

/** HVPFN_DOWN: the 4 KiB frame holding `gpa`. */
export const gpaToPfn = (gpa: number): number => Math.floor(gpa / HV_HYP_PAGE_SIZE);
/** HVPFN_UP: frames needed to reach `gpa`, rounding up. */
export const gpaToPfnUp = (gpa: number): number => Math.ceil(gpa / HV_HYP_PAGE_SIZE);
export const pfnToGpa = (pfn: number): number => pfn * HV_HYP_PAGE_SIZE;
/** Offset of `gpa` within its 4 KiB frame. */
export const pageOffset = (gpa: number): number => gpa % HV_HYP_PAGE_SIZE;
export const isPageAligned = (gpa: number): boolean => gpa % HV_HYP_PAGE_SIZE === 0;

/** Number of 4 KiB Hyper-V pages in one guest page (1, 4 or 16). */
export const hvPagesPerGuestPage = (pageSize: GuestPageSize): number => pageSize / HV_HYP_PAGE_SIZE;

/** The 4 KiB frames that make up guest page `guestPfn` (a frame number in guest-page units). */
export function hvPfnsOfGuestPage(guestPfn: number, pageSize: GuestPageSize): number[] {
  const n = hvPagesPerGuestPage(pageSize);
  const first = guestPfn * n;
  return Array.from({ length: n }, (_, i) => first + i);
}

/** Number of 4 KiB frames spanned by [gpa, gpa + length). */
export function hvPageCount(gpa: number, length: number): number {
  if (length <= 0) return 0;
  return gpaToPfn(gpa + length - 1) - gpaToPfn(gpa) + 1;
}

/** A 64-bit MSR page field ([63:12] GPN) as a GPA; exact for every GPN below 2^41. */
export const gpnFieldToGpa = (value: bigint): number => Number(value >> 12n) * HV_HYP_PAGE_SIZE;
