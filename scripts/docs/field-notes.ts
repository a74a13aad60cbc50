export const FIELD_NOTES: Readonly<Record<string, string>> = {};
