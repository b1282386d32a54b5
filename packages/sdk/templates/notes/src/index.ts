import type { Capsule } from '@stratum/sdk';
import { CapabilityError } from '@stratum/sdk';
import { openDatabase } from '@stratum/sdk/sql';

interface Note {
  id: number;
  title: string;
  body: string;
  created_at: string;
}

const MAX_TITLE = 200;
const MAX_BODY = 10_000;

let migrated = false;

function database() {
  const db = openDatabase('default');
  if (!migrated) {
    // Once per instance; IF NOT EXISTS makes it safe when several instances start together.
    db.execute(`CREATE TABLE IF NOT EXISTS notes (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      title TEXT NOT NULL,
      body TEXT NOT NULL,
      created_at TEXT NOT NULL
    )`);
    migrated = true;
  }
  return db;
}

const problem = (status: number, message: string) => Response.json({ error: message }, { status });

// GET    /notes       every note, newest first
// POST   /notes       {"title": "...", "body": "..."} -> the new note (201)
// GET    /notes/<id>  one note
// DELETE /notes/<id>  removes it (204)
export default {
  async fetch(request) {
    const url = new URL(request.url);
    const match = /^\/notes(?:\/([0-9]+))?\/?$/.exec(url.pathname);
    if (!match) return problem(404, 'no such route; try /notes');
    const db = database();
    const id = match[1] === undefined ? undefined : Number(match[1]);
    try {
      if (id === undefined && request.method === 'GET') {
        return Response.json(db.query<Note>('SELECT id, title, body, created_at FROM notes ORDER BY id DESC'));
      }
      if (id === undefined && request.method === 'POST') {
        let input: unknown;
        try {
          input = await request.json();
        } catch {
          return problem(400, 'the body must be JSON: {"title": "...", "body": "..."}');
        }
        const { title, body } = (input ?? {}) as { title?: unknown; body?: unknown };
        if (typeof title !== 'string' || title.trim() === '' || title.length > MAX_TITLE) {
          return problem(400, `title must be a non-empty string of at most ${MAX_TITLE} characters`);
        }
        if (body !== undefined && (typeof body !== 'string' || body.length > MAX_BODY)) {
          return problem(400, `body must be a string of at most ${MAX_BODY} characters`);
        }
        const [note] = db.query<Note>(
          'INSERT INTO notes (title, body, created_at) VALUES (?, ?, ?) RETURNING id, title, body, created_at',
          [title.trim(), body ?? '', new Date().toISOString()],
        );
        return Response.json(note, { status: 201, headers: { location: `/notes/${note?.id}` } });
      }
      if (id !== undefined && request.method === 'GET') {
        const [note] = db.query<Note>('SELECT id, title, body, created_at FROM notes WHERE id = ?', [id]);
        return note ? Response.json(note) : problem(404, `no note ${id}`);
      }
      if (id !== undefined && request.method === 'DELETE') {
        const { rowsAffected } = db.execute('DELETE FROM notes WHERE id = ?', [id]);
        return rowsAffected > 0 ? new Response(null, { status: 204 }) : problem(404, `no note ${id}`);
      }
      return problem(405, `${request.method} is not allowed here`);
    } catch (error) {
      if (error instanceof CapabilityError) return problem(503, `the database failed: ${error.code}`);
      throw error;
    }
  },
} satisfies Capsule;
