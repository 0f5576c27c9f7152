// The signed-in session: the API key, the account and who the key belongs to.
// Kept in sessionStorage only (this tab, until it closes or the user signs out); never in
// localStorage, cookies or the URL.

const STORAGE_KEY = "hearth.session";

export function loadSession() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null");
    return saved && saved.key && saved.account && saved.userId ? saved : null;
  } catch {
    return null;
  }
}

export function saveSession(session) {
  sessionStorage.setItem(
    STORAGE_KEY,
    JSON.stringify({ key: session.key, account: session.account, userId: session.userId }),
  );
}

export function clearSession() {
  sessionStorage.removeItem(STORAGE_KEY);
}

/** The first 12 characters of a key: the `prefix` the API lists keys by. */
export function keyPrefix(key) {
  return key.slice(0, 12);
}

/**
 * Which user of the account the key belongs to. With `userId` given, that user; otherwise
 * the user whose key list holds this key's prefix (a non-admin may list only its own keys,
 * so the others answer 403 and are passed over).
 */
export async function findMe(api, users, key, userId) {
  if (userId) {
    const user = users.find((u) => u.name.split("/").pop() === userId);
    if (!user) throw new Error(`there is no user ${userId} in account ${api.account}`);
    return user;
  }
  const prefix = keyPrefix(key);
  for (const user of users) {
    const id = user.name.split("/").pop();
    try {
      const page = await api.get(api.acct(`users/${encodeURIComponent(id)}/apiKeys`), {
        filter: `prefix = "${prefix}"`,
      });
      if ((page.apiKeys || []).some((k) => k.prefix === prefix)) return user;
    } catch (error) {
      if (error.status !== 403 && error.status !== 404) throw error;
    }
  }
  throw new Error("could not tell which user this key belongs to; enter your user ID");
}
