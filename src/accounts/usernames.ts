/**
 * Usernames are unique case-insensitively: "Alice", "alice" and "ＡＬＩＣＥ" (full-width) are one
 * account. NFKC folds compatibility forms, then lower case; what the person typed is kept for display.
 */
export function normalizeUsername(username: string): string {
  return username.normalize('NFKC').trim().toLowerCase();
}

/** Letters, digits and . _ - @ + (so an email address works), 1 to 64 characters after normalising. */
export const USERNAME_PATTERN = /^[\p{L}\p{N}._@+-]{1,64}$/u;
