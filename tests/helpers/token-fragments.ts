/**
 * What a cut would leave of a token: every prefix and every suffix of `min` (8) or more
 * characters. A text "holds the token" when it holds any of them, not only the whole token
 * (issue 20: a reflected token cut at 200 characters before redaction showed 34 of its 35).
 */
export function tokenFragments(token: string, min = 8): string[] {
  const fragments = new Set<string>();
  for (let length = min; length <= token.length; length++) {
    fragments.add(token.slice(0, length));
    fragments.add(token.slice(token.length - length));
  }
  return [...fragments];
}

/** The fragments of `token` that `text` holds (the longest first); empty when it holds none. */
export function leakedFragments(text: string, token: string, min = 8): string[] {
  return tokenFragments(token, min)
    .filter((fragment) => text.includes(fragment))
    .sort((a, b) => b.length - a.length);
}
