using System.Runtime.InteropServices;

namespace Lowbit.Tensors;

/// <summary>Native memory in 2 MB transparent huge pages where Linux grants them (<c>madvise(MADV_HUGEPAGE)</c>;
/// elsewhere, or with THP off, plain pages): a decode step streams every weight once, and with 4 KB pages each
/// 4 KB costs a TLB miss the 2 MB pages avoid (measured 4-8% on the 1.1B-shape BF16 model, docs/benchmarks-cpu.md).</summary>
public static unsafe class HugePages
{
    public const long PageBytes = 2L << 20;

    /// <summary>Allocations this large or larger take huge pages (smaller ones would waste most of a page).</summary>
    public const long Threshold = 2 * PageBytes;

    private const int MadviseHugePage = 14; // MADV_HUGEPAGE

    /// <summary><paramref name="bytes"/> of uncommitted memory on a 2 MB boundary, advised into huge pages before
    /// any page is touched; free with <see cref="NativeMemory.AlignedFree"/>.</summary>
    public static void* Allocate(long bytes)
    {
        long size = (Math.Max(bytes, 1) + PageBytes - 1) & ~(PageBytes - 1);
        void* memory = NativeMemory.AlignedAlloc((nuint)size, (nuint)PageBytes);
        // Where the advice is refused the memory is still good, in small pages.
        if (OperatingSystem.IsLinux())
            _ = madvise((nint)memory, (nuint)size, MadviseHugePage);
        return memory;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int madvise(nint address, nuint length, int advice);
}
