import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import { AllotError, ERRORS, type ErrorCode, problemType } from "../engine/errors.js";

/** Sends an RFC 9457 problem document. */
export function sendProblem(reply: FastifyReply, req: FastifyRequest, code: ErrorCode, detail: string, extra: Record<string, unknown> = {}) {
  const { status, title } = ERRORS[code];
  const body = { type: problemType(code), title, status, detail, code, instance: req.url, requestId: req.id, ...extra };
  return reply.status(status).header("content-type", "application/problem+json; charset=utf-8").send(JSON.stringify(body));
}

function describeIssues(err: FastifyError): string {
  const where = err.validationContext ?? "body";
  const parts = (err.validation ?? []).slice(0, 5).map((v) => {
    const path = String((v as { instancePath?: string }).instancePath ?? "")
      .split("/")
      .filter(Boolean)
      .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
      .join("");
    return `${where}${path}: ${v.message ?? "is not valid"}`;
  });
  return parts.join("; ") || err.message;
}

/** The one place where any error becomes an HTTP answer. Unexpected errors are logged, never shown. */
export function errorHandler(err: FastifyError | AllotError | Error, req: FastifyRequest, reply: FastifyReply) {
  if (err instanceof AllotError) return sendProblem(reply, req, err.code, err.message, err.details);
  const fe = err as FastifyError;
  if (hasZodFastifySchemaValidationErrors(fe)) return sendProblem(reply, req, "invalid-request", describeIssues(fe));
  if (fe.validation) return sendProblem(reply, req, "invalid-request", describeIssues(fe));
  if (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    const detail =
      fe.code === "FST_ERR_CTP_INVALID_JSON_BODY" || err instanceof SyntaxError
        ? `the request body is not valid JSON: ${fe.message}`
        : fe.code === "FST_ERR_CTP_BODY_TOO_LARGE"
          ? "the request body is too large"
          : fe.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE"
            ? "send the body as application/json"
            : fe.message;
    const code: ErrorCode = fe.statusCode === 404 ? "not-found" : "invalid-request";
    const status = fe.statusCode;
    return reply
      .status(status)
      .header("content-type", "application/problem+json; charset=utf-8")
      .send(JSON.stringify({ type: problemType(code), title: ERRORS[code].title, status, detail, code, instance: req.url, requestId: req.id }));
  }
  req.log.error({ err }, "unexpected error");
  return sendProblem(reply, req, "internal", `an unexpected error occurred; quote request id ${req.id} when reporting it`);
}
