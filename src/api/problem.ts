import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import { AllotError, ERRORS, type ErrorCode, problemType } from "../engine/errors.js";
import { InvalidValueError, StoreUnavailableError } from "../store/store.js";

/** Sends an RFC 9457 problem document. */
export function sendProblem(
  reply: FastifyReply,
  req: FastifyRequest,
  code: ErrorCode,
  detail: string,
  extra: Record<string, unknown> = {},
  /** Overrides the code's usual status, for transport errors such as 413. */
  statusOverride?: number,
) {
  const { title } = ERRORS[code];
  const status = statusOverride ?? ERRORS[code].status;
  const body = { type: problemType(code), title, status, detail, code, instance: req.url, requestId: req.id, ...extra };
  reply.problemCode = code; // for the failure metrics
  return reply.status(status).header("content-type", "application/problem+json; charset=utf-8").send(JSON.stringify(body));
}

/** Where a field was sent, said as a user would: a body field by its name, the others with where they were. */
const PLACES: Record<string, string> = { querystring: " (query parameter)", params: " (in the path)", headers: " (header)" };

function describeIssues(err: FastifyError): string {
  const where = err.validationContext ?? "body";
  const parts = (err.validation ?? []).slice(0, 5).map((v) => {
    const path = String((v as { instancePath?: string }).instancePath ?? "")
      .split("/")
      .filter(Boolean)
      .map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`))
      .join("");
    const field = path === "" ? (where === "body" ? "the request body" : `the ${where}`) : `${path}${PLACES[where] ?? ""}`;
    return `${field}: ${v.message ?? "is not valid"}`;
  });
  return parts.join("; ") || err.message;
}

/** The one place where any error becomes an HTTP answer. Unexpected errors are logged, never shown. */
export function errorHandler(err: FastifyError | AllotError | Error, req: FastifyRequest, reply: FastifyReply) {
  if (err instanceof AllotError) return sendProblem(reply, req, err.code, err.message, err.details);
  if (err instanceof InvalidValueError) return sendProblem(reply, req, "invalid-request", `a value cannot be stored: ${err.message}`);
  if (err instanceof StoreUnavailableError) {
    // expected while the database is away (a failover): one line per request, no stack
    req.log.warn({ reason: err.message }, "store unavailable");
    return sendProblem(reply, req, "store-unavailable", err.message);
  }
  const fe = err as FastifyError;
  if (hasZodFastifySchemaValidationErrors(fe)) return sendProblem(reply, req, "invalid-request", describeIssues(fe));
  if (fe.validation) return sendProblem(reply, req, "invalid-request", describeIssues(fe));
  if (fe.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") {
    return sendProblem(reply, req, "unsupported-media-type", "send the body as JSON with the header content-type: application/json");
  }
  if (fe.code === "FST_ERR_CTP_INVALID_JSON_BODY" || fe.code === "FST_ERR_CTP_EMPTY_JSON_BODY" || err instanceof SyntaxError) {
    return sendProblem(reply, req, "invalid-request", "the request body is not valid JSON; check its quotes, commas and brackets");
  }
  if (fe.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
    return sendProblem(reply, req, "payload-too-large", `the request body is larger than the limit of ${req.routeOptions.bodyLimit ?? "?"} bytes (ALLOT_BODY_LIMIT)`);
  }
  if (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    return sendProblem(reply, req, fe.statusCode === 404 ? "not-found" : "invalid-request", fe.message, {}, fe.statusCode);
  }
  req.log.error({ err }, "unexpected error");
  return sendProblem(reply, req, "internal", `an unexpected error occurred; quote request id ${req.id} when reporting it`);
}
