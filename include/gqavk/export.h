/* GQAVK_API marks what the shared library exports: the C functions of gqavk.h and the public C++
 * classes and functions. Everything else is built with hidden visibility. C and C++. */
#ifndef GQAVK_EXPORT_H
#define GQAVK_EXPORT_H

#if defined(_WIN32) && !defined(GQAVK_STATIC)
#if defined(GQAVK_BUILDING)
#define GQAVK_API __declspec(dllexport)
#else
#define GQAVK_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define GQAVK_API __attribute__((visibility("default")))
#else
#define GQAVK_API
#endif

#endif /* GQAVK_EXPORT_H */
