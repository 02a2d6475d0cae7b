package web

import (
	"errors"
	"log/slog"

	"github.com/gofiber/fiber/v2"

	"github.com/passbatch/passbatch/gym"
)

// APIError is the JSON error body of DESIGN §6.
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

func invalid(field, msg string) *APIError {
	return &APIError{Status: fiber.StatusUnprocessableEntity, Code: "invalid", Message: msg, Field: field}
}

func notFound(what string) *APIError {
	return &APIError{Status: fiber.StatusNotFound, Code: "not_found", Message: what + " not found"}
}

var (
	errUnauthenticated = &APIError{Status: fiber.StatusUnauthorized, Code: "unauthenticated", Message: "log in, or send Authorization: Bearer <admin token>"}
	errForbidden       = &APIError{Status: fiber.StatusForbidden, Code: "forbidden", Message: "not allowed"}
)

// asAPIError maps what the domain and the engine return to the API's
// errors; anything else is nil (an internal error).
func asAPIError(err error) *APIError {
	var ae *APIError
	var fe *gym.FieldError
	var fbe *fiber.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &fe):
		return invalid(fe.Field, fe.Message)
	case errors.As(err, &fbe):
		return &APIError{Status: fbe.Code, Code: codeFor(fbe.Code), Message: fbe.Message}
	case gym.IsNotFound(err):
		return &APIError{Status: fiber.StatusNotFound, Code: "not_found", Message: err.Error()}
	case gym.IsInvalidParams(err):
		return invalid("params", err.Error())
	case gym.IsConflict(err):
		return &APIError{Status: fiber.StatusConflict, Code: "conflict", Message: err.Error()}
	}
	return nil
}

// errorHandler answers every error as the JSON error body; internal errors
// are logged and not shown.
func errorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		ae := asAPIError(err)
		if ae == nil {
			log.ErrorContext(c.UserContext(), "request failed", "method", c.Method(), "path", c.Path(), "err", err)
			ae = &APIError{Status: fiber.StatusInternalServerError, Code: "internal", Message: "internal error"}
		}
		return c.Status(ae.Status).JSON(fiber.Map{"error": ae})
	}
}

func codeFor(status int) string {
	switch status {
	case fiber.StatusBadRequest:
		return "bad_request"
	case fiber.StatusUnauthorized:
		return "unauthenticated"
	case fiber.StatusForbidden:
		return "forbidden"
	case fiber.StatusNotFound:
		return "not_found"
	case fiber.StatusMethodNotAllowed:
		return "method_not_allowed"
	case fiber.StatusConflict:
		return "conflict"
	case fiber.StatusRequestEntityTooLarge:
		return "too_large"
	case fiber.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	case fiber.StatusUnprocessableEntity:
		return "invalid"
	case fiber.StatusTooManyRequests:
		return "rate_limited"
	}
	if status >= 500 {
		return "internal"
	}
	return "error"
}
