import path from 'node:path';

/**
 * nginx.conf for a private nginx instance in `dir` (its own pid, logs and temp paths, in the
 * foreground), with `http` lines inside its http block. Started as `nginx -p dir -c dir/nginx.conf`.
 */
export function privateNginxConfig(dir: string, http: readonly string[]): string {
  return [
    'daemon off;',
    'worker_processes 1;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log info;`,
    'events { worker_connections 64; }',
    'http {',
    `  access_log ${dir}/access.log;`,
    `  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;`,
    ...http.map((line) => `  ${line}`),
    '}',
    '',
  ].join('\n');
}

export const nginxArgs = (dir: string) => ['-p', dir, '-c', path.join(dir, 'nginx.conf')];
