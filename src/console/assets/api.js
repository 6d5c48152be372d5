// The console's one way to the API: the same JSON routes and credentials as
// any other client. The session (user and token pair) lives in this module's
// memory only: never in local or session storage, a cookie, the page or a
// URL. A reload or a closed tab ends it (see the README, "Console").

let session = null;
let refreshing = null;
const endedListeners = [];

/** An error the API answered with (`{statusCode, error, message}`), or a network failure. */
export class ApiError extends Error {
  constructor(status, title, messages, retryAfter) {
    super(messages.join(" "));
    this.status = status;
    this.title = title;
    this.messages = messages;
    this.retryAfter = retryAfter;
  }

  /** One sentence for a person, with the wait when the API asked for one. */
  describe() {
    const text = this.messages.join(" ") || this.title;
    return this.retryAfter ? `${text} Try again in ${this.retryAfter} s.` : text;
  }
}

/** Called with a reason when the session ends without the user signing out. */
export function onSessionEnded(listener) {
  endedListeners.push(listener);
}

export function currentUser() {
  return session?.user ?? null;
}

export function signedIn() {
  return session !== null;
}

async function send(method, path, { body, token } = {}) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "Network error", ["authgate cannot be reached. Check your connection and try again."]);
  }
  return response;
}

async function read(response) {
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (response.ok) return data;
  const message = data?.message;
  const messages = Array.isArray(message) ? message.map(String) : message ? [String(message)] : [];
  const retryAfter = response.headers.get("retry-after");
  throw new ApiError(
    response.status,
    data?.error || response.statusText || `HTTP ${response.status}`,
    messages,
    retryAfter ? Number(retryAfter) : null,
  );
}

function start(body) {
  session = { user: body.user, accessToken: body.accessToken, refreshToken: body.refreshToken };
  return body.user;
}

function end(reason) {
  const had = session !== null;
  session = null;
  refreshing = null;
  if (had && reason) for (const listener of endedListeners) listener(reason);
}

export async function signUp(email, password, name) {
  const body = { email, password };
  if (name) body.name = name;
  return start(await read(await send("POST", "/auth/signup", { body })));
}

export async function signIn(email, password) {
  return start(await read(await send("POST", "/auth/login", { body: { email, password } })));
}

/**
 * Trades the refresh token for a new pair, once for all the requests that
 * found the access token expired: the API treats a second use of one refresh
 * token as theft and ends the session.
 */
function refresh() {
  if (!refreshing) {
    const refreshToken = session.refreshToken;
    refreshing = send("POST", "/auth/refresh", { body: { refreshToken } })
      .then(read)
      .then(
        (pair) => {
          if (session && session.refreshToken === refreshToken) {
            session.accessToken = pair.accessToken;
            session.refreshToken = pair.refreshToken;
          }
        },
        (error) => {
          end("Your session has ended. Sign in again.");
          throw error;
        },
      )
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

/**
 * A request as the signed-in user. A 401 is answered by one refresh and one
 * retry; a second 401 ends the session.
 */
export async function call(method, path, body) {
  if (!session) throw new ApiError(401, "Unauthorized", ["Sign in first."]);
  const used = session.accessToken;
  let response = await send(method, path, { body, token: used });
  if (response.status === 401) {
    if (session && session.accessToken === used) await refresh();
    if (!session) throw new ApiError(401, "Unauthorized", ["Your session has ended. Sign in again."]);
    response = await send(method, path, { body, token: session.accessToken });
    if (response.status === 401) {
      end("Your session has ended. Sign in again.");
    }
  }
  return read(response);
}

/** Ends the session on the server (its tokens stop working at once), then here. */
export async function signOut() {
  try {
    if (session) await call("POST", "/auth/logout");
  } finally {
    end(null);
  }
}

/**
 * The page is going away (reload, close, navigation): nothing can use its
 * tokens afterwards, so the server ends the session now instead of keeping it
 * alive until the refresh token expires.
 */
export function abandon() {
  if (!session) return;
  const token = session.accessToken;
  session = null;
  refreshing = null;
  fetch("/auth/logout", {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
    keepalive: true,
    credentials: "omit",
  }).catch(() => {});
}
