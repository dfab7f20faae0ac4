import type { TestServer } from './server.js';

/** A token for the admin API from the test server's bootstrap admin client. */
export async function adminToken(server: Pick<TestServer, 'url' | 'admin'>, scope = 'admin:clients admin:resource-servers admin:keys'): Promise<string> {
  const response = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${server.admin.clientId}:${server.admin.clientSecret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope }),
  });
  if (response.status !== 200) throw new Error(`admin token: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { access_token: string }).access_token;
}

/** Calls the admin API and returns status and parsed JSON body. */
export async function adminCall<T = Record<string, unknown>>(
  server: Pick<TestServer, 'url' | 'admin'>,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
): Promise<{ status: number; body: T }> {
  const response = await fetch(`${server.url}/admin/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token ?? (await adminToken(server))}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: (text === '' ? undefined : JSON.parse(text)) as T };
}

/** Client-credentials token request with HTTP Basic; returns status and JSON. */
export async function clientCredentials(
  url: string,
  client: { client_id: string; client_secret: string },
  params: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${url}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...params }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}
