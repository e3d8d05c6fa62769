/*
 * libjpeg's system-dependent memory functions (libjpeg-turbo's jmemsys.h), in place of its
 * jmemnobs.c. Defining all eight here keeps jmemnobs.o out of the link: a static archive member is
 * only linked for a symbol still undefined, and jpeg_memory.rs has this object linked ahead of
 * libturbojpeg.a. (Should a libjpeg-turbo upgrade add a ninth, the link fails on a duplicate
 * symbol rather than quietly using the old functions.)
 *
 * Why: a progressive JPEG is decoded into a whole-image coefficient buffer (53 MB for a 12 MP
 * photo) that libjpeg zeroes before use. glibc maps a block that size fresh for each decode and
 * unmaps it after, so every decode faults it in again 4 KiB at a time: about a quarter of a
 * progressive photo's decode time. Here a large pool of 2 MiB or more gets a mapping of its own,
 * aligned to 2 MiB and marked MADV_HUGEPAGE, so the kernel faults it in 2 MiB at a time where
 * transparent huge pages are allowed ("madvise" or "always"). Freed, it is unmapped at once, as
 * glibc does: the resident set is what it was. Everything else is malloc and free, as before.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "jpeglib.h"
#include "jerror.h"

#define HUGE_PAGE ((size_t)2 << 20)
/* Where the mapping's length is kept, in front of the block libjpeg gets; a multiple of 64 keeps
 * the block as aligned as malloc's. */
#define HEADER ((size_t)64)

/* How many large pools have been mapped this way (jpeg_memory.rs). */
static volatile size_t huge_page_pools;

size_t imaging_jpeg_huge_page_pools(void)
{
  return __atomic_load_n(&huge_page_pools, __ATOMIC_RELAXED);
}

/* Whether a pool of `size` bytes gets a mapping of its own (else it is malloc's). */
static int mapped_alone(size_t size)
{
  return size >= HUGE_PAGE && size <= SIZE_MAX / 2;
}

/* What a request for `size` bytes from jpeg_get_large takes: a whole number of huge pages for a
 * large pool, else `size` (give or take malloc's own few bytes). The memory budget counts this. */
size_t imaging_jpeg_pool_footprint(size_t size)
{
  if (!mapped_alone(size))
    return size;
  return (size + HEADER + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
}

void *jpeg_get_small(j_common_ptr cinfo, size_t sizeofobject)
{
  (void)cinfo;
  return malloc(sizeofobject);
}

void jpeg_free_small(j_common_ptr cinfo, void *object, size_t sizeofobject)
{
  (void)cinfo;
  (void)sizeofobject;
  free(object);
}

void *jpeg_get_large(j_common_ptr cinfo, size_t sizeofobject)
{
  (void)cinfo;
  if (!mapped_alone(sizeofobject))
    return malloc(sizeofobject);
  size_t length = imaging_jpeg_pool_footprint(sizeofobject);
  /* One huge page more than needed, so that a 2 MiB-aligned run of `length` bytes is inside. */
  size_t mapped = length + HUGE_PAGE;
  char *map = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED)
    return NULL;
  char *start = (char *)(((uintptr_t)map + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
  if (start > map)
    munmap(map, (size_t)(start - map));
  if (map + mapped > start + length)
    munmap(start + length, (size_t)(map + mapped - (start + length)));
  /* Advice only: where huge pages are off (or not built in), it changes nothing. */
  (void)madvise(start, length, MADV_HUGEPAGE);
  *(size_t *)start = length;
  __atomic_add_fetch(&huge_page_pools, 1, __ATOMIC_RELAXED);
  return start + HEADER;
}

void jpeg_free_large(j_common_ptr cinfo, void *object, size_t sizeofobject)
{
  (void)cinfo;
  if (!mapped_alone(sizeofobject)) {
    free(object);
    return;
  }
  char *start = (char *)object - HEADER;
  munmap(start, *(size_t *)start);
}

/* The rest is jmemnobs.c's: no backing store, and a limit only when one is set. */
size_t jpeg_mem_available(j_common_ptr cinfo, size_t min_bytes_needed, size_t max_bytes_needed,
                          size_t already_allocated)
{
  (void)min_bytes_needed;
  if (cinfo->mem->max_memory_to_use) {
    if ((size_t)cinfo->mem->max_memory_to_use > already_allocated)
      return cinfo->mem->max_memory_to_use - already_allocated;
    return 0;
  }
  return max_bytes_needed;
}

/* jmemsys.h's backing_store_ptr; never dereferenced, as there is no backing store. */
void jpeg_open_backing_store(j_common_ptr cinfo, void *info, long total_bytes_needed)
{
  (void)info;
  (void)total_bytes_needed;
  ERREXIT(cinfo, JERR_NO_BACKING_STORE);
}

long jpeg_mem_init(j_common_ptr cinfo)
{
  (void)cinfo;
  return 0;
}

void jpeg_mem_term(j_common_ptr cinfo)
{
  (void)cinfo;
}
