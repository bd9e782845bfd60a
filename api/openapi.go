package api

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the OpenAPI 3 document of the API, written by hand; a test
// holds it to the routes and their roles.
//
//go:embed openapi.json
var OpenAPI []byte

func (s *Server) openAPI(c *call) error {
	c.status = http.StatusOK
	c.w.Header().Set("Content-Type", "application/json")
	_, err := c.w.Write(OpenAPI)
	return err
}
