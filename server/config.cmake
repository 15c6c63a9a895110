# Configuration loading, the admin socket and their tests. Included from
# server/CMakeLists.txt, so paths are relative to server/.

add_library(parley_config config.cpp)
target_include_directories(parley_config PUBLIC ${PROJECT_SOURCE_DIR})
# Module names are checked against modules::names(); module options are left
# to the modules themselves.
target_link_libraries(parley_config PUBLIC yaml-cpp PRIVATE parley_modules parley_xmpp)

# The framing and the blocking client: no Asio, so parleyctl stays small.
add_library(parley_admin_protocol admin_protocol.cpp)
target_include_directories(parley_admin_protocol PUBLIC ${PROJECT_SOURCE_DIR})

add_library(parley_admin admin.cpp)
target_link_libraries(parley_admin
  PUBLIC parley_admin_protocol parley_router parley_storage parley_asio
  PRIVATE spdlog::spdlog)

parley_unit_test(parley_config_test SOURCES config_test.cpp LIBS parley_config)
if(TARGET parley_config_test)
  target_compile_definitions(parley_config_test PRIVATE
    PARLEY_EXAMPLE_CONFIG="${PROJECT_SOURCE_DIR}/config/parley.example.yml")
endif()
parley_unit_test(parley_admin_protocol_test SOURCES admin_protocol_test.cpp LIBS parley_admin_protocol)
parley_unit_test(parley_admin_test SOURCES admin_test.cpp LIBS parley_admin)
