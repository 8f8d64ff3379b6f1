# Copies one of etcd's v3 API .proto files (Debian: golang-etcd-server-dev) from IN to OUT
# without what only etcd's Go build uses: the gogoproto import and options, and the
# grpc-gateway HTTP annotations. Neither changes the wire format. Run with cmake -P.
file(READ "${IN}" text)
string(REGEX REPLACE "import \"gogoproto/gogo.proto\";" "" text "${text}")
string(REGEX REPLACE "import \"google/api/annotations.proto\";" "" text "${text}")
string(REGEX REPLACE "option \\(gogoproto\\.[a-z_]+\\) = [a-z]+;" "" text "${text}")
# `option (google.api.http) = { post: "..." body: "*" };` inside an rpc, with at most one level
# of nested braces (additional_bindings { ... }).
string(REGEX REPLACE "option \\(google\\.api\\.http\\) = {([^{}]|{[^{}]*})*};" "" text
                     "${text}")
# Field options such as [(gogoproto.nullable) = false] (none in 3.4's files; kept general).
string(REGEX REPLACE "\\[\\(gogoproto\\.[a-z_]+\\) = [a-z\"]+\\]" "" text "${text}")
string(FIND "${text}" "gogoproto" left_gogo)
string(FIND "${text}" "google.api" left_api)
if(NOT left_gogo EQUAL -1 OR NOT left_api EQUAL -1)
  message(FATAL_ERROR "${IN}: gogoproto or google.api options left after stripping; "
                      "this etcd version writes them differently")
endif()
file(WRITE "${OUT}" "${text}")
