# cmake --install: the public headers, libgqavk.so* and libgqavk.a, a CMake package
# (find_package(gqavk) gives gqavk::gqavk and gqavk::gqavk_static) and gqavk.pc for pkg-config.
include(CMakePackageConfigHelpers)

set(GQAVK_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/gqavk)

install(TARGETS gqavk gqavk_static EXPORT gqavkTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/gqavk DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h")
install(EXPORT gqavkTargets NAMESPACE gqavk:: DESTINATION ${GQAVK_CMAKE_DIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/gqavkConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/gqavkConfig.cmake
                              INSTALL_DESTINATION ${GQAVK_CMAKE_DIR})
# find_package(gqavk X.Y) accepts any installed X.* at least X.Y, as the SONAME carries only X.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/gqavkConfigVersion.cmake
                                 COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/gqavkConfig.cmake ${PROJECT_BINARY_DIR}/gqavkConfigVersion.cmake
        DESTINATION ${GQAVK_CMAKE_DIR})

# The .pc file finds the prefix from its own place (${pcfiledir}), so an install to another
# prefix (cmake --install --prefix) needs no reconfigure.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  message(FATAL_ERROR "gqavk.pc needs CMAKE_INSTALL_LIBDIR and CMAKE_INSTALL_INCLUDEDIR relative "
                      "to the prefix (got '${CMAKE_INSTALL_LIBDIR}' and "
                      "'${CMAKE_INSTALL_INCLUDEDIR}')")
endif()
file(RELATIVE_PATH GQAVK_PC_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
string(REGEX REPLACE "/$" "" GQAVK_PC_PREFIX "${GQAVK_PC_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/gqavk.pc.in ${PROJECT_BINARY_DIR}/gqavk.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/gqavk.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
