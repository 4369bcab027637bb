import { cn } from '@/lib/utils';

export function Logo({ className }: { className?: string }) {
  return (
    <svg viewBox="0 0 32 32" aria-hidden="true" className={cn('size-8', className)}>
      <rect width="32" height="32" rx="7" fill="currentColor" />
      <path d="M9 20a7 7 0 0 1 14 0M12.5 20a3.5 3.5 0 0 1 7 0" fill="none" stroke="white" strokeWidth="2.2" strokeLinecap="round" />
      <circle cx="16" cy="20" r="1.6" fill="#22c55e" />
    </svg>
  );
}
