# cmake/install.cmake -- what `cmake --install` puts where (README: "Install"),
# and the Debian package built from it with `cpack -G DEB`.
#
#   <prefix>/bin/neap                          the command
#   <libdir>/libneap.so*, libneap.a            the library, shared and static
#   <includedir>/neap.h, neap_*.h              the public headers (include/*.h)
#   <libdir>/pkgconfig/neap.pc                 pkg-config: -lneap (shared; with
#                                              --static, Libs.private too)
#   <libdir>/pkgconfig/neap-static.pc          pkg-config: libneap.a and what it needs
#   <libdir>/cmake/neap/                       find_package(neap): neap::neap,
#                                              neap::neap_static
#   <mandir>/man1, man3, man7                  neap(1), neap-run(1)..., neap(3),
#                                              neap-options(7) (docs/man)
#   <docdir>/copyright                         the licence (LICENSE)
#
# Included from the top CMakeLists.txt once the library's targets exist; the
# command's own install rule is in cli/CMakeLists.txt.
include(CMakePackageConfigHelpers)

# the names consumers use, in a build tree that adds neap with add_subdirectory
# as in an installed package
add_library(neap::neap ALIAS neap_shared)
add_library(neap::neap_static ALIAS neap_static)
set_target_properties(neap_shared PROPERTIES EXPORT_NAME neap)
set_target_properties(neap_static PROPERTIES EXPORT_NAME neap_static)

install(TARGETS neap_shared neap_static EXPORT neapTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# every public header: a new one in include/ is installed without a change here
file(GLOB NEAP_PUBLIC_HEADERS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/include/*.h)
install(FILES ${NEAP_PUBLIC_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# --- the CMake package: find_package(neap) --------------------------------------
set(NEAP_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/neap)
install(EXPORT neapTargets NAMESPACE neap:: FILE neapTargets.cmake
        DESTINATION ${NEAP_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/neapConfig.cmake.in
  ${PROJECT_BINARY_DIR}/neapConfig.cmake INSTALL_DESTINATION ${NEAP_CMAKE_DIR})
# 0.x: a minor version may change the interface, so 0.1 satisfies 0.1.* only
write_basic_package_version_file(${PROJECT_BINARY_DIR}/neapConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/neapConfig.cmake ${PROJECT_BINARY_DIR}/neapConfigVersion.cmake
        DESTINATION ${NEAP_CMAKE_DIR})

# --- pkg-config: neap.pc and neap-static.pc ----------------------------------------
# The prefix is found from the .pc file's own place (${pcfiledir}), so that
# an installation moved elsewhere, or made with `cmake --install --prefix`
# other than the configured one, still works.  Absolute CMAKE_INSTALL_LIBDIR
# or INCLUDEDIR are written as they are.
# What libneap.a needs beyond the C library (the static target's INTERFACE
# link libraries in the top CMakeLists.txt): the maths library (expm1, log1p:
# the sampler in src/trace/trace.c), dlopen/dladdr (src/trace/symbols.c;
# libdw.so.1 is dlopen'ed, never linked) and threads.  -ldl and -lpthread are
# empty since glibc 2.34, and needed before it.
set(NEAP_PC_LIBS_PRIVATE "-lm -ldl -lpthread")
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(NEAP_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(NEAP_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  file(RELATIVE_PATH NEAP_PC_UP "/neap/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/neap")
  string(REGEX REPLACE "/$" "" NEAP_PC_UP "${NEAP_PC_UP}")
  set(NEAP_PC_PREFIX "\${pcfiledir}/${NEAP_PC_UP}")
  set(NEAP_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(NEAP_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(NEAP_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
foreach(pc neap neap-static)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/${pc}.pc.in ${PROJECT_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/${pc}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()

# --- manual pages (docs/man: roff written by hand) and the licence -------------
foreach(section 1 3 7)
  file(GLOB NEAP_MAN_PAGES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/man/*.${section})
  install(FILES ${NEAP_MAN_PAGES} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()
# Debian's name for it (/usr/share/doc/neap/copyright), kept by the plain
# installation too
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME copyright)

# --- the Debian package: cpack -G DEB in the build directory -------------------
# One package, neap, holding all of the above under /usr.  Its dependencies
# are computed by dpkg-shlibdeps when it is there (Debian: dpkg-dev).
set(NEAP_DEB_MAINTAINER "neap developers <neap-devel@invalid>" CACHE STRING
    "the Maintainer field of the Debian package (cpack -G DEB)")
set(CPACK_PACKAGE_NAME neap)
set(CPACK_PACKAGE_VENDOR "the neap authors")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "memory allocator that gives memory back to the operating system")
set(CPACK_PACKAGE_CONTACT "${NEAP_DEB_MAINTAINER}")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
"memory allocator that gives memory back to the operating system
 neap is a complete malloc (thread-safe, per-thread heaps) in which a
 surviving object pins its own 4 KiB page and nothing more: empty pages go
 back to the OS a few milliseconds after they empty.
 .
 This package holds libneap (shared and static), its headers, pkg-config
 and CMake files, the neap command (neap run -- CMD runs any program,
 CPython included, on neap and summarises its memory; neap stats, neap
 report) and the manual pages.")
# libdw.so.1 resolves traced stacks to file:line when it is there (dlopen'ed)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libdw1")
find_program(NEAP_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(NEAP_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
else()
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "libc6")
endif()
# a shlibs file and the ldconfig trigger for libneap.so.0
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
include(CPack)
